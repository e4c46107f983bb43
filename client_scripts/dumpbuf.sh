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
gf_paged_get /dumpbuf "$@"
