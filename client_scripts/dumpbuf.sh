#!/usr/bin/env bash
# Print the names of the stored chunk files: {"nmlist": [...]}, optionally one page of them.
set -euo pipefail
# shellcheck source=SCRIPTDIR/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage="usage: $(basename "$0") [-h] [-l LIMIT] [-o OFFSET]   (GET \$GLITCHFLOW_URL/dumpbuf)"
query=()
while getopts ":hl:o:" opt; do
    case "$opt" in
        h) echo "$usage"; exit 0 ;;
        l) [[ "$OPTARG" =~ ^[0-9]+$ ]] || gf_die "-l needs a whole number"; query+=("limit=$OPTARG") ;;
        o) [[ "$OPTARG" =~ ^[0-9]+$ ]] || gf_die "-o needs a whole number"; query+=("offset=$OPTARG") ;;
        :) gf_die "-$OPTARG needs a value; $usage" ;;
        *) gf_die "unknown option -$OPTARG; $usage" ;;
    esac
done
shift $((OPTIND - 1))
[[ $# -eq 0 ]] || gf_die "no arguments expected; $usage"

path=/dumpbuf
if [[ ${#query[@]} -gt 0 ]]; then
    path+="?$(IFS='&'; echo "${query[*]}")"
fi
gf_curl GET "$path"
