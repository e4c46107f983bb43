#!/usr/bin/env bash
# Print the datastore's state: {"resp": "OPERATIONAL"} or {"resp": "FROZEN"}.
set -euo pipefail
# shellcheck source=SCRIPTDIR/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

gf_get_only /desc 'GET /desc: the datastore'"'"'s state, {"resp": "OPERATIONAL"} or {"resp": "FROZEN"}.' "$@"
