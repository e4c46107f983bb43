# shellcheck shell=bash
# Shared by the Glitchflow curl scripts: base URL, token, and one curl call that fails on HTTP errors.
#
#   GLITCHFLOW_URL      API base URL (default http://127.0.0.1:8000)
#   GLITCHFLOW_TOKEN    bearer token, sent as "Authorization: Bearer ..." when set
#   GLITCHFLOW_TIMEOUT  seconds per request (default 30)
#
# The token never appears on a command line (it is handed to curl through a file descriptor),
# so other users cannot read it with ps.

GLITCHFLOW_URL="${GLITCHFLOW_URL:-http://127.0.0.1:8000}"
GLITCHFLOW_URL="${GLITCHFLOW_URL%/}"
GLITCHFLOW_TOKEN="${GLITCHFLOW_TOKEN:-}"
GLITCHFLOW_TIMEOUT="${GLITCHFLOW_TIMEOUT:-30}"

# gf_die MESSAGE: print "script: MESSAGE" on stderr and exit 2 (usage error).
gf_die() {
    printf '%s: %s\n' "$(basename "$0")" "$1" >&2
    exit 2
}

# gf_json_string TEXT: TEXT as a JSON string literal (quotes, backslashes and controls escaped).
gf_json_string() {
    local s="$1"
    s="${s//\\/\\\\}"
    s="${s//\"/\\\"}"
    s="${s//$'\n'/\\n}"
    s="${s//$'\r'/\\r}"
    s="${s//$'\t'/\\t}"
    printf '"%s"' "$s"
}

# gf_curl METHOD PATH [curl args...]: call the API, print the answer body as one line.
# Returns curl's status: 22 for an HTTP error (the body, which says why, is still printed).
# The answer is printed in one write, so answers of parallel calls never interleave.
gf_curl() {
    local method="$1" path="$2"
    shift 2
    local status=0 answer
    if [[ -n "$GLITCHFLOW_TOKEN" ]]; then
        answer="$(curl --silent --show-error --fail-with-body --max-time "$GLITCHFLOW_TIMEOUT" \
            -X "$method" -H @<(printf 'Authorization: Bearer %s\n' "$GLITCHFLOW_TOKEN") \
            "$@" "$GLITCHFLOW_URL$path")" || status=$?
    else
        answer="$(curl --silent --show-error --fail-with-body --max-time "$GLITCHFLOW_TIMEOUT" \
            -X "$method" "$@" "$GLITCHFLOW_URL$path")" || status=$?
    fi
    [[ -z "$answer" ]] || printf '%s\n' "$answer"
    return "$status"
}

# gf_post_json PATH: POST the JSON read from stdin to PATH.
gf_post_json() {
    gf_curl POST "$1" -H 'Content-Type: application/json' --data-binary @-
}

# A script whose only job is `GET PATH`: -h prints the usage, anything else is refused.
gf_get_only() {
    local path=$1 usage
    usage="usage: $(basename "$0") [-h]   (GET \$GLITCHFLOW_URL$path)"
    shift
    while getopts ":h" opt; do
        case "$opt" in
            h) echo "$usage"; exit 0 ;;
            *) gf_die "unknown option -$OPTARG; $usage" ;;
        esac
    done
    shift $((OPTIND - 1))
    [[ $# -eq 0 ]] || gf_die "no arguments expected; $usage"
    gf_curl GET "$path"
}
