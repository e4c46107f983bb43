#!/usr/bin/env bash
# Print the names of the stored chunk files: {"nmlist": [...]}, optionally one page of them.
set -euo pipefail
# shellcheck source=SCRIPTDIR/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

gf_synopsis="[-l LIMIT] [-o OFFSET]"
gf_summary='GET /dumpbuf: the names of the stored chunk files, {"nmlist": [...]}.
With tokens on the API it needs a reader or admin token: GLITCHFLOW_READER_TOKEN when set,
else GLITCHFLOW_TOKEN.'
gf_option_help="  -l LIMIT      at most LIMIT names
  -o OFFSET     skip the first OFFSET names"
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

# A listing: with tokens on the API it needs a reader (or admin) token.
GLITCHFLOW_TOKEN="${GLITCHFLOW_READER_TOKEN:-$GLITCHFLOW_TOKEN}"
path=/dumpbuf
if [[ ${#query[@]} -gt 0 ]]; then
    path+="?$(IFS='&'; echo "${query[*]}")"
fi
gf_curl GET "$path"
