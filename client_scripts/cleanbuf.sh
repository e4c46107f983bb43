#!/usr/bin/env bash
# Archive the current batch (frozen or not, as the original did) and reopen the buffer:
# {"resp": "CLEANED", ...}. -f is kept for older callers; every flush without a batch is forced.
set -euo pipefail
# shellcheck source=SCRIPTDIR/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

gf_synopsis="[-m MESSAGE] [-f]"
gf_summary='POST /cleanbuf: archive the frozen batch and accept data again; answers
{"resp": "CLEANED", ...}. A buffer that is not frozen is refused (409 NOT_FROZEN) unless -f is
given. Needs an admin token when the API has admin tokens.'
gf_option_help="  -m MESSAGE    why, kept in the event log (default: \"flushed by $(basename "$0")\")
  -f            flush even if the buffer is not frozen"
msg="flushed by $(basename "$0")"
force=false
gf_options ":hm:f" "$@"
set -- "${gf_args[@]}"
while getopts ":hm:f" opt; do
    case "$opt" in
        h) gf_help ;;
        m) msg="$OPTARG" ;;
        f) force=true ;;
        :) gf_bad_option "-$OPTARG needs a value" ;;
        *) gf_bad_option "unknown option -$OPTARG" ;;
    esac
done
shift $((OPTIND - 1))
[[ $# -eq 0 ]] || gf_bad_option "no arguments expected"

if [[ "$force" == true ]]; then
    printf '{"msg": %s, "force": true}' "$(gf_json_string "$msg")" | gf_post_json /cleanbuf
else
    printf '{"msg": %s}' "$(gf_json_string "$msg")" | gf_post_json /cleanbuf
fi
