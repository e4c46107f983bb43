#!/usr/bin/env bash
# Send the freeze signal, as the Airflow DAG does: {"resp": "FROZEN", ...} or {"resp": "WAITING"}.
# The body carries {"user", "token"}; the token is $GLITCHFLOW_TOKEN (also sent as the bearer).
set -euo pipefail
# shellcheck source=SCRIPTDIR/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

gf_synopsis="[-u USER]"
gf_summary='POST /train: the freeze signal, as the Airflow DAG sends it. Answers {"resp": "FROZEN",
...} (the batch is ready for training) or {"resp": "WAITING"}. Needs an admin token when the API
has admin tokens; the body carries it too, as the original protocol does.'
gf_option_help="  -u USER       who asks (default: \$USER)"
user="${USER:-operator}"
gf_options ":hu:" "$@"
set -- "${gf_args[@]}"
while getopts ":hu:" opt; do
    case "$opt" in
        h) gf_help ;;
        u) user="$OPTARG" ;;
        :) gf_bad_option "-$OPTARG needs a value" ;;
        *) gf_bad_option "unknown option -$OPTARG" ;;
    esac
done
shift $((OPTIND - 1))
[[ $# -eq 0 ]] || gf_bad_option "no arguments expected"

printf '{"user": %s, "token": %s}' "$(gf_json_string "$user")" "$(gf_json_string "$GLITCHFLOW_TOKEN")" |
    gf_post_json /train
