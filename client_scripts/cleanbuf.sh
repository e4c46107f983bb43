#!/usr/bin/env bash
# Archive the current batch (frozen or not, as the original did) and reopen the buffer:
# {"resp": "CLEANED", ...}. -f is kept for older callers; every flush without a batch is forced.
set -euo pipefail
# shellcheck source=SCRIPTDIR/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage="usage: $(basename "$0") [-h] [-m MESSAGE] [-f]   (POST \$GLITCHFLOW_URL/cleanbuf; -f forces)"
msg="flushed by $(basename "$0")"
force=false
while getopts ":hm:f" opt; do
    case "$opt" in
        h) echo "$usage"; exit 0 ;;
        m) msg="$OPTARG" ;;
        f) force=true ;;
        :) gf_die "-$OPTARG needs a value; $usage" ;;
        *) gf_die "unknown option -$OPTARG; $usage" ;;
    esac
done
shift $((OPTIND - 1))
[[ $# -eq 0 ]] || gf_die "no arguments expected; $usage"

if [[ "$force" == true ]]; then
    printf '{"msg": %s, "force": true}' "$(gf_json_string "$msg")" | gf_post_json /cleanbuf
else
    printf '{"msg": %s}' "$(gf_json_string "$msg")" | gf_post_json /cleanbuf
fi
