#!/usr/bin/env bash
# The test command of MeshNet: builds the solution (warnings are errors) and runs every test
# project under tests/ (tests/*/*.csproj, so new projects are picked up automatically).
#
# Environment:
#   TEST_FILTER        passed to `dotnet test --filter`, e.g. 'Category!=WireGuardInterop'
#   TEST_RESULTS_DIR   where the .trx files go (kept); default: a temporary directory, removed
#   TEST_VERBOSITY     console logger verbosity (quiet|minimal|normal|detailed); default: normal
#   TEST_HANG_TIMEOUT  a test project hung this long is killed and counted failed; default: 20m
#   CI=true            interop and PostgreSQL tests fail instead of skipping when prerequisites are missing
#   MESHNET_TEST_LOG   a file: the integration tests' nodes log everything to it (for chasing a failure)
#   MESHNET_TEST_PCAP  a directory: the TCP interop tests capture the inner packets in the namespace there (tcpdump)
#
# The last line of output is always: tests: N passed, N failed, N skipped
# The exit code is non-zero when the build failed, a test failed, or a project did not run.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"

# System packages the interop and PostgreSQL tests need, and the commands that show they are
# installed (PostgreSQL's server: see have_postgresql).
SYSTEM_PACKAGES="wireguard-go wireguard-tools iproute2 iptables iperf3 socat iputils-ping postgresql"
SYSTEM_COMMANDS="wireguard-go wg ip iptables iperf3 socat ping"

export DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

passed=0 failed=0 skipped=0
summary() { echo "tests: ${passed} passed, ${failed} failed, ${skipped} skipped"; }

# True when PostgreSQL's server is installed: Debian keeps initdb off PATH, under
# /usr/lib/postgresql/<version>/bin (where the tests' PostgresCluster looks first).
have_postgresql() {
    local initdb
    for initdb in /usr/lib/postgresql/*/bin/initdb; do
        [[ -x "${initdb}" ]] && return 0
    done
    command -v initdb >/dev/null 2>&1
}

install_system_packages() {
    local missing=() command
    for command in ${SYSTEM_COMMANDS}; do
        command -v "${command}" >/dev/null 2>&1 || missing+=("${command}")
    done
    have_postgresql || missing+=("initdb")
    [[ ${#missing[@]} -eq 0 ]] && return 0
    if [[ $(id -u) -ne 0 ]]; then
        echo "note: missing ${missing[*]} and not root: interop and PostgreSQL tests will be skipped (or fail with CI=true;"
        echo "      the PostgreSQL store's contract tests, inherited plain facts, fail either way)."
        return 0
    fi
    echo "==> installing ${SYSTEM_PACKAGES} (missing: ${missing[*]})"
    # shellcheck disable=SC2086 # the list is meant to split into words
    if ! { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${SYSTEM_PACKAGES}; }; then
        echo "warning: installing system packages failed: interop and PostgreSQL tests will be skipped (or fail with CI=true;"
        echo "         the PostgreSQL store's contract tests, inherited plain facts, fail either way)."
    fi
}

# Prints "passed failed skipped" for a trx file, from its <Counters .../> element: error,
# timeout and aborted count as failed. Skipped tests are the <UnitTestResult> elements with
# outcome="NotExecuted": VSTest leaves them out of the notExecuted counter.
trx_counters() {
    tr '\r\n' '  ' <"$1" | awk '
        function counter(name,   text) {
            if (match(counters, " " name "=\"[0-9]+\"")) {
                text = substr(counters, RSTART, RLENGTH)
                gsub(/[^0-9]/, "", text)
                return text + 0
            }
            return 0
        }
        {
            if (!match($0, /<Counters [^>]*>/)) exit 1
            counters = substr($0, RSTART, RLENGTH)
            rest = $0
            notRun = 0
            while (match(rest, /<UnitTestResult [^>]*>/)) {
                if (substr(rest, RSTART, RLENGTH) ~ /outcome="NotExecuted"/) notRun++
                rest = substr(rest, RSTART + RLENGTH)
            }
            skipped = counter("notExecuted")
            if (notRun > skipped) skipped = notRun
            print counter("passed"), counter("failed") + counter("error") + counter("timeout") + counter("aborted"), skipped
            done = 1
        }
        END { if (!done) exit 1 }'
}

# Prints "FAILED <test>: <start of its message>" for each failed test of a trx file, so that
# the end of the output (all a CI log may keep) names what failed.
failed_tests() {
    tr '\r\n' '  ' <"$1" | awk '
        {
            rest = $0
            while (match(rest, /<UnitTestResult [^>]*outcome="Failed"[^>]*>/)) {
                head = substr(rest, RSTART, RLENGTH)
                rest = substr(rest, RSTART + RLENGTH)
                name = head
                sub(/.*testName="/, "", name)
                sub(/".*/, "", name)
                message = ""
                if (match(rest, /<Message>[^<]*<\/Message>/) && match(rest, /<\/UnitTestResult>/) > 0) {
                    end = RSTART
                    if (match(rest, /<Message>[^<]*<\/Message>/) && RSTART < end) {
                        message = substr(rest, RSTART + 9, RLENGTH - 19)
                    }
                }
                gsub(/  +/, " ", message)
                # Where it failed: the first frames of its stack trace that have a source line
                # (ours; the framework has none), as file:line.
                where = ""
                if (match(rest, /<\/UnitTestResult>/)) {
                    result = substr(rest, 1, RSTART)
                    if (match(result, /<StackTrace>[^<]*<\/StackTrace>/)) {
                        trace = substr(result, RSTART, RLENGTH)
                        frames = 0
                        while (frames < 3 && match(trace, /[^ \/]+\.cs:line [0-9]+/)) {
                            frame = substr(trace, RSTART, RLENGTH)
                            sub(/:line /, ":", frame)
                            where = where (frames ? " < " : " at ") frame
                            trace = substr(trace, RSTART + RLENGTH)
                            frames++
                        }
                    }
                }
                print "FAILED " name ": " substr(message, 1, 400) where
            }
        }'
}

install_system_packages

echo "==> dotnet build MeshNet.sln -c Release"
if ! dotnet build MeshNet.sln -c Release -warnaserror -nologo; then
    echo "build failed"
    summary
    exit 1
fi

if [[ -n "${TEST_RESULTS_DIR:-}" ]]; then
    results="${TEST_RESULTS_DIR}"
    mkdir -p "${results}"
else
    results="$(mktemp -d)"
    trap 'rm -rf "${results}"' EXIT
fi

filter_args=()
[[ -n "${TEST_FILTER:-}" ]] && filter_args=(--filter "${TEST_FILTER}")

project_lines=()
problems=0
for project in tests/*/*.csproj; do
    [[ -e "${project}" ]] || continue
    name="$(basename "${project}" .csproj)"
    trx="${results}/${name}.trx"
    rm -f "${trx}"
    echo "==> ${name}"
    status=0
    dotnet test "${project}" --no-build -c Release \
        --logger "trx;LogFileName=${name}.trx" \
        --logger "console;verbosity=${TEST_VERBOSITY:-normal}" \
        --results-directory "${results}" \
        --blame-hang-timeout "${TEST_HANG_TIMEOUT:-20m}" --blame-hang-dump-type none \
        "${filter_args[@]}" || status=$?

    if [[ -f "${trx}" ]] && counts="$(trx_counters "${trx}")"; then
        read -r p f s <<<"${counts}"
        note=""
        if [[ ${status} -ne 0 && ${f} -eq 0 ]]; then
            # The run failed without a failed test: the test host crashed or was killed.
            f=1 note=" (test run exited with code ${status} without a failed test: counted as 1 failed)"
        fi
    else
        p=0 f=1 s=0 note=" (no test results, exit code ${status}: the test run crashed or did not start (is the project in MeshNet.sln?); counted as 1 failed)"
    fi
    passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
    [[ ${f} -gt 0 ]] && problems=1
    project_lines+=("${name}: ${p} passed, ${f} failed, ${s} skipped${note}")
done

echo
echo "==> results"
for trx in "${results}"/*.trx; do
    [[ -f "${trx}" ]] && failed_tests "${trx}"
done
for line in "${project_lines[@]}"; do
    echo "${line}"
done
summary
exit "${problems}"
