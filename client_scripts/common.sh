# shellcheck shell=bash
# Shared by the Glitchflow curl scripts: base URL, token, the help and options every script takes,
# and one curl call that fails on HTTP errors.
#
#   --url URL           API base URL (overrides GLITCHFLOW_URL)
#   -h, --help          the script's help
#   GLITCHFLOW_URL      API base URL (default http://127.0.0.1:8000)
#   GLITCHFLOW_TOKEN    bearer token, sent as "Authorization: Bearer ..." when set
#   GLITCHFLOW_TIMEOUT  seconds per request (default 30)
#
# The token never appears on a command line (it is handed to curl through a file descriptor),
# so other users cannot read it with ps.
#
# A script sets gf_synopsis (its own options, for the usage line), gf_summary (what it does) and
# gf_option_help (a line per option of its own), then runs `gf_options OPTSTRING "$@"` and
# `set -- "${gf_args[@]}"` before its getopts loop.

GLITCHFLOW_URL="${GLITCHFLOW_URL:-http://127.0.0.1:8000}"
GLITCHFLOW_URL="${GLITCHFLOW_URL%/}"
GLITCHFLOW_TOKEN="${GLITCHFLOW_TOKEN:-}"
GLITCHFLOW_TIMEOUT="${GLITCHFLOW_TIMEOUT:-30}"
gf_synopsis="" gf_summary="" gf_option_help="" gf_args=()

# gf_die MESSAGE: print "script: MESSAGE" on stderr and exit 2 (usage error).
gf_die() {
    printf '%s: %s\n' "$(basename "$0")" "$1" >&2
    exit 2
}

# gf_usage: the script's one-line usage.
gf_usage() {
    printf 'usage: %s [-h] [--url URL]%s\n' "$(basename "$0")" "${gf_synopsis:+ $gf_synopsis}"
}

# gf_bad_option MESSAGE: a usage error, followed by the usage line.
gf_bad_option() {
    gf_die "$1; $(gf_usage)"
}

# gf_help: print the script's help and exit 0.
gf_help() {
    gf_usage
    printf '\n%s\n\nOptions:\n' "$gf_summary"
    [[ -z "$gf_option_help" ]] || printf '%s\n' "$gf_option_help"
    cat <<'EOF'
  --url URL     API base URL (default: $GLITCHFLOW_URL, else http://127.0.0.1:8000)
  -h, --help    show this help and exit

Environment:
  GLITCHFLOW_URL      API base URL when --url is not given
  GLITCHFLOW_TOKEN    bearer token, sent as "Authorization: Bearer ..." (never on a command line)
  GLITCHFLOW_TIMEOUT  seconds per request (default 30)
EOF
    exit 0
}

# gf_options OPTSTRING ARGS...: take --url URL, --url=URL and --help out of ARGS and leave the
# rest, for getopts with OPTSTRING, in gf_args (--help becomes -h). The value of an option that
# takes one is passed on as it is, so `-m --url` is the message "--url".
gf_options() {
    local optstring=$1
    shift
    gf_args=()
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --url)
                [[ $# -ge 2 ]] || gf_bad_option "--url needs a value"
                GLITCHFLOW_URL=$2
                shift 2
                ;;
            --url=*) GLITCHFLOW_URL=${1#--url=}; shift ;;
            --help) gf_args+=(-h); shift ;;
            --) gf_args+=("$@"); break ;;
            --*) gf_bad_option "unknown option $1" ;;
            -?)
                if [[ "$optstring" == *"${1:1:1}:"* && $# -ge 2 ]]; then
                    gf_args+=("$1" "$2")
                    shift 2
                else
                    gf_args+=("$1")
                    shift
                fi
                ;;
            *) gf_args+=("$1"); shift ;;
        esac
    done
    GLITCHFLOW_URL="${GLITCHFLOW_URL%/}"
    [[ -n "$GLITCHFLOW_URL" ]] || gf_bad_option "--url needs a value"
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

# gf_get_only PATH SUMMARY ARGS...: a script whose only job is `GET PATH`: -h prints its help,
# --url sets the API, anything else is refused.
gf_get_only() {
    local path=$1
    gf_summary=$2
    shift 2
    gf_options ":h" "$@"
    set -- "${gf_args[@]}"
    while getopts ":h" opt; do
        case "$opt" in
            h) gf_help ;;
            *) gf_bad_option "unknown option -$OPTARG" ;;
        esac
    done
    shift $((OPTIND - 1))
    [[ $# -eq 0 ]] || gf_bad_option "no arguments expected"
    gf_curl GET "$path"
}

# gf_paged_get PATH ARGS...: a listing's -l LIMIT and -o OFFSET from ARGS, then GET PATH with them.
# Listings need a reader (or admin) token once the API has tokens: GLITCHFLOW_READER_TOKEN when
# set, else GLITCHFLOW_TOKEN. The script sets gf_synopsis, gf_summary and gf_option_help first.
gf_paged_get() {
    local path=$1 opt query=() OPTIND=1
    shift
    gf_options ":hl:o:" "$@"
    set -- "${gf_args[@]}"
    while getopts ":hl:o:" opt; do
        case "$opt" in
            h) gf_help ;;
            l) [[ "$OPTARG" =~ ^[0-9]+$ ]] || gf_die "-l needs a whole number"; query+=("limit=$OPTARG") ;;
            o) [[ "$OPTARG" =~ ^[0-9]+$ ]] || gf_die "-o needs a whole number"; query+=("offset=$OPTARG") ;;
            :) gf_bad_option "-$OPTARG needs a value" ;;
            *) gf_bad_option "unknown option -$OPTARG" ;;
        esac
    done
    shift $((OPTIND - 1))
    [[ $# -eq 0 ]] || gf_bad_option "no arguments expected"
    GLITCHFLOW_TOKEN="${GLITCHFLOW_READER_TOKEN:-$GLITCHFLOW_TOKEN}"
    if [[ ${#query[@]} -gt 0 ]]; then
        path+="?$(IFS='&'; echo "${query[*]}")"
    fi
    gf_curl GET "$path"
}
