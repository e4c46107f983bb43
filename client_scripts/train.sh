#!/usr/bin/env bash
# Send the freeze signal, as the Airflow DAG does: {"resp": "FROZEN", ...} or {"resp": "WAITING"}.
# The body carries {"user", "token"}; the token is $GLITCHFLOW_TOKEN (also sent as the bearer).
set -euo pipefail
# shellcheck source=SCRIPTDIR/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage="usage: $(basename "$0") [-h] [-u USER]   (POST \$GLITCHFLOW_URL/train; USER default \$USER)"
user="${USER:-operator}"
while getopts ":hu:" opt; do
    case "$opt" in
        h) echo "$usage"; exit 0 ;;
        u) user="$OPTARG" ;;
        :) gf_die "-$OPTARG needs a value; $usage" ;;
        *) gf_die "unknown option -$OPTARG; $usage" ;;
    esac
done
shift $((OPTIND - 1))
[[ $# -eq 0 ]] || gf_die "no arguments expected; $usage"

printf '{"user": %s, "token": %s}' "$(gf_json_string "$user")" "$(gf_json_string "$GLITCHFLOW_TOKEN")" |
    gf_post_json /train
