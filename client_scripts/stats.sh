#!/usr/bin/env bash
# Print the buffer's counters: {"n_itm": files, "buff_size": bytes}.
set -euo pipefail
# shellcheck source=SCRIPTDIR/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

gf_get_only /stats 'GET /stats: the buffer'"'"'s counters, {"n_itm": files, "buff_size": bytes}.' "$@"
