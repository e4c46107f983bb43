#!/usr/bin/env bash
# Print the datastore's state: {"resp": "OPERATIONAL"} or {"resp": "FROZEN"}.
set -euo pipefail
# shellcheck source=SCRIPTDIR/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage="usage: $(basename "$0") [-h]   (GET \$GLITCHFLOW_URL/desc)"
while getopts ":h" opt; do
    case "$opt" in
        h) echo "$usage"; exit 0 ;;
        *) gf_die "unknown option -$OPTARG; $usage" ;;
    esac
done
shift $((OPTIND - 1))
[[ $# -eq 0 ]] || gf_die "no arguments expected; $usage"

gf_curl GET /desc
