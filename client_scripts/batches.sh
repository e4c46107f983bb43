#!/usr/bin/env bash
# Print the archived batches, newest first, with their recorded results, and the sealed ones.
set -euo pipefail
# shellcheck source=SCRIPTDIR/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

gf_synopsis="[-l LIMIT] [-o OFFSET]"
gf_summary='GET /batches: the archived batches, newest first (manifest, recorded results), and the
sealed batches waiting, {"batches": [...], "total": N, "sealed": [...]}.
With tokens on the API it needs a reader or admin token: GLITCHFLOW_READER_TOKEN when set,
else GLITCHFLOW_TOKEN.'
gf_option_help="  -l LIMIT      at most LIMIT batches (default 10)
  -o OFFSET     skip the newest OFFSET batches"
gf_paged_get /batches "$@"
