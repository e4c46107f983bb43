#!/usr/bin/env bash
# Send strain chunks to /streamdata: one sample chunk, N distinct chunks in parallel, or a file.
#
#   streamdata.sh                    one chunk of 16 samples at 4096 Hz starting now (GPS)
#   streamdata.sh -n 100 -p 8        100 consecutive distinct chunks, 8 requests at a time
#   streamdata.sh -c L1:TEST-STRAIN  the same with a channel (default: the default channel)
#   streamdata.sh -f chunk.json      send a JSON file as it is
#   streamdata.sh --url URL ...      to the API at URL (default $GLITCHFLOW_URL)
#
# Each answer is printed on its own line. Exit status: 0 if every chunk was stored (CREATED or
# DUPLICATE), curl's status (22 for an HTTP error) if one was not, 2 for a usage error.
set -euo pipefail
# shellcheck source=SCRIPTDIR/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

gf_synopsis="[-n CHUNKS] [-p PARALLEL] [-s SAMPLES] [-r RATE] [-t GPS] [-c CHANNEL] [-f FILE]"
gf_summary='POST /streamdata: send strain chunks and print each answer on its own line
({"resp": "CREATED", ...} or "DUPLICATE"); by default one chunk of 16 samples at 4096 Hz starting
now (GPS). Needs a writer token when the API has writer tokens. Exit status: 0 if every chunk was
stored, curl'"'"'s status if one was not (22: the API refused it), 2 for a usage error.'
gf_option_help="  -n CHUNKS     send CHUNKS consecutive, distinct chunks (default: 1)
  -p PARALLEL   requests in flight at a time (default: 1)
  -s SAMPLES    samples per chunk (default: 16)
  -r RATE       sample rate in Hz (default: 4096)
  -t GPS        GPS time of the first sample (default: now)
  -c CHANNEL    channel name, e.g. L1:TEST-STRAIN (default: the default channel)
  -f FILE       send the JSON chunk in FILE as it is"

# GPS time now: seconds since 1980-01-06 plus the 18 leap seconds since then.
gps_now() { echo $(( $(date +%s) - 315964800 + 18 )); }

chunks=1 parallel=1 samples=16 rate=4096 t0="" channel="" file=""
gf_options ":hn:p:s:r:t:c:f:" "$@"
set -- "${gf_args[@]}"
while getopts ":hn:p:s:r:t:c:f:" opt; do
    case "$opt" in
        h) gf_help ;;
        n) chunks="$OPTARG" ;;
        p) parallel="$OPTARG" ;;
        s) samples="$OPTARG" ;;
        r) rate="$OPTARG" ;;
        t) t0="$OPTARG" ;;
        c) channel="$OPTARG" ;;
        f) file="$OPTARG" ;;
        :) gf_bad_option "-$OPTARG needs a value" ;;
        *) gf_bad_option "unknown option -$OPTARG" ;;
    esac
done
shift $((OPTIND - 1))
[[ $# -eq 0 ]] || gf_bad_option "no arguments expected"
for value in "$chunks" "$parallel" "$samples" "$rate"; do
    [[ "$value" =~ ^[1-9][0-9]*$ ]] || gf_bad_option "-n, -p, -s and -r need whole numbers > 0"
done
t0="${t0:-$(gps_now)}"
[[ "$t0" =~ ^[0-9]+(\.[0-9]+)?$ ]] || gf_die "-t needs a GPS time >= 0"

if [[ -n "$file" ]]; then
    [[ -r "$file" ]] || gf_die "cannot read $file"
    gf_post_json /streamdata <"$file"
    exit
fi

# payload INDEX: chunk INDEX of the series, a strain-like sine plus a ramp, samples at 1/rate.
# awk computes t0 + INDEX * samples / rate and prints it with 17 significant digits (exact).
payload() {
    awk -v i="$1" -v n="$samples" -v rate="$rate" -v t0="$t0" -v channel="$channel" 'BEGIN {
        printf "{\"h\": ["
        for (k = 0; k < n; k++) {
            j = i * n + k
            printf "%s%.17g", (k ? ", " : ""), 1e-21 * sin(j * 0.37) + 1e-23 * (j % 97)
        }
        printf "], \"t\": [%.17g, %.17g]", t0 + i * n / rate, 1 / rate
        if (channel != "") printf ", \"channel\": \"%s\"", channel
        printf "}"
    }'
}

send() { payload "$1" | gf_post_json /streamdata; }

if [[ "$chunks" -eq 1 ]]; then
    send 0
    exit
fi

failed=0
running=0
for ((i = 0; i < chunks; i++)); do
    send "$i" &
    running=$((running + 1))
    if [[ "$running" -ge "$parallel" ]]; then
        wait -n || failed=$((failed + 1))
        running=$((running - 1))
    fi
done
while [[ "$running" -gt 0 ]]; do
    wait -n || failed=$((failed + 1))
    running=$((running - 1))
done
if [[ "$failed" -gt 0 ]]; then
    printf '%s: %d of %d chunks not stored\n' "$(basename "$0")" "$failed" "$chunks" >&2
    exit 1
fi
