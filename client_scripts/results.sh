#!/usr/bin/env bash
# Record what became of an archived batch (its dataset, the trainer's summary): the JSON object
# in FILE (or on stdin) goes to POST /batches/BATCH/results; a repeat replaces the record.
set -euo pipefail
# shellcheck source=SCRIPTDIR/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

gf_synopsis="-b BATCH [-f FILE]"
gf_summary='POST /batches/BATCH/results: record the export and training results of an archived
batch beside its manifest, {"resp": "RECORDED", ...}; a repeat replaces them. The body is a JSON
object such as {"dag_run_id": "manual", "dataset": "/d/dataset.h5", "report": {"windows": 14,
"flagged": 2, "top": [{"channel": "H1:X", "gps": 968654552.25}]}}. 404 when the batch is not
archived. Needs an admin token when the API has admin tokens.'
gf_option_help="  -b BATCH      the archived batch's id
  -f FILE       read the JSON object from FILE (default: stdin; - is stdin too)"
batch="" file="-"
gf_options ":hb:f:" "$@"
set -- "${gf_args[@]}"
while getopts ":hb:f:" opt; do
    case "$opt" in
        h) gf_help ;;
        b) [[ "$OPTARG" =~ ^[1-9][0-9]*$ ]] || gf_die "-b needs a batch id (a whole number from 1)"; batch=$OPTARG ;;
        f) file=$OPTARG ;;
        :) gf_bad_option "-$OPTARG needs a value" ;;
        *) gf_bad_option "unknown option -$OPTARG" ;;
    esac
done
shift $((OPTIND - 1))
[[ $# -eq 0 ]] || gf_bad_option "no arguments expected"
[[ -n "$batch" ]] || gf_bad_option "-b BATCH is required"

if [[ "$file" == - ]]; then
    gf_post_json "/batches/$batch/results"
else
    [[ -r "$file" ]] || gf_die "cannot read $file"
    gf_post_json "/batches/$batch/results" < "$file"
fi
