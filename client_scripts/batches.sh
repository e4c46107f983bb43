#!/usr/bin/env bash
# Print the archived batches, newest first, with their recorded results, and the sealed ones.
set -euo pipefail
# shellcheck source=SCRIPTDIR/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

gf_synopsis="[-l LIMIT] [-o OFFSET]"
gf_summary='GET /batches: the archived batches, newest first (manifest, recorded results), and the
sealed batches waiting, {"batches": [...], "total": N, "sealed": [...]}.'
gf_option_help="  -l LIMIT      at most LIMIT batches (default 10)
  -o OFFSET     skip the newest OFFSET batches"
query=()
gf_options ":hl:o:" "$@"
set -- "${gf_args[@]}"
while getopts ":hl:o:" opt; do
    case "$opt" in
        h) gf_help ;;
        l) [[ "$OPTARG" =~ ^[0-9]+$ ]] || gf_die "-l needs a whole number"; query+=("limit=$OPTARG") ;;
        o) [[ "$OPTARG" =~ ^[0-9]+$ ]] || gf_die "-o needs a whole number"; query+=("offset=$OPTARG") ;;
        :) gf_bad_option "-$OPTARG needs a value" ;;
        *) gf_bad_option "unknown option -$OPTARG" ;;
    esac
done
shift $((OPTIND - 1))
[[ $# -eq 0 ]] || gf_bad_option "no arguments expected"

path=/batches
if [[ ${#query[@]} -gt 0 ]]; then
    path+="?$(IFS='&'; echo "${query[*]}")"
fi
gf_curl GET "$path"
