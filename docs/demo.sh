#!/usr/bin/env bash
# `make demo`: the daemon does a small dependency graph with the real Claude Code CLI.
#
# On a throw-away git repository, with no API key: a policy that gates database migrations, a
# DAG of eight tasks (some with overlapping path locks), one registered Claude Code AI, and
# `aictl daemon start` against aictl's local stand-in for the Anthropic Messages API
# (aictl/model_server.py). Each agent really runs: the scripted model asks it to write
# notes/<task>.md, Claude Code calls its Write tool in the task's own git worktree, aictl's tool
# gate checks the path against the task's locks, then aictl commits the work and merges it into
# the branch (`git log --graph` shows the merges of agents that ran at once). A person approves the gated task while the daemon works. Then the evidence,
# the decision records and the audit log's verification.
#
# The same against the real Anthropic API: see "The daemon with a real model" in README.md.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=$(command -v python3 || command -v python)
[ -x "$here/.venv/bin/python" ] && python="$here/.venv/bin/python"
# The claude that the claude-agent-sdk wheel carries (installed with aictl by `make install`).
claude=$("$python" -c 'from connectors.claude_code.command import sdk_binary; print(sdk_binary())')
[ -x "$claude" ] || { echo "the Claude Code CLI is missing at $claude: run \`make install\`" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/aictl-demo.XXXXXX")
repo="$work/repo"
mkdir "$repo"
server_pid="" follow_pid=""
cleanup() {
    [ -n "$follow_pid" ] && kill "$follow_pid" 2>/dev/null || true
    (cd "$repo" && aictl daemon stop --timeout 60s >/dev/null 2>&1) || true
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
cd "$repo"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }
field() { "$python" -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

say "A throw-away repository ($repo) with aictl initialised"
git init -q .
git config user.name demo && git config user.email demo@example.com
mkdir -p src/api src/web db docs && echo "# Demo" > README.md && touch src/api/.keep src/web/.keep
run aictl init

say "A policy: migrations need a person's approval before an agent claims them"
cat > .ai/policy.yaml <<'YAML'
version: 1
default: allow
settings:
  lease_ttl: 1m
  timeouts:
    task: 3m
rules:
  - id: migrations-need-approval
    actions: [claim]
    when: touches(task.paths, "db/migrations/**")
    effect: require_approval
    reason: migrations are irreversible in production
notifications:
  console: true
YAML
run aictl policy validate
git add -A && git commit -q -m "initial"

say "The local model server (no API key needed): every agent is asked to write notes/<task>.md"
cat > "$work/script.json" <<'JSON'
[
  {"tool_use": {"name": "Write",
                "input": {"file_path": "notes/{task}.md",
                          "content": "# Task {task}\n\nDone by the agent, inside its locked paths.\n"}},
   "usage": {"input_tokens": 1800, "output_tokens": 60}},
  {"text": "I wrote the notes for this task.", "usage": {"input_tokens": 1900, "output_tokens": 12}}
]
JSON
"$python" -m aictl.model_server --script "$work/script.json" --port 0 --port-file "$work/port" \
    >/dev/null 2>&1 &
server_pid=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.1; done
port=$(cat "$work/port")
export ANTHROPIC_BASE_URL="http://127.0.0.1:$port" ANTHROPIC_API_KEY="demo-key-for-the-local-model-server"
export AICTL_CLAUDE_BIN="$claude" CLAUDE_CODE_MAX_RETRIES=0
echo "model server on $ANTHROPIC_BASE_URL"

say "Register a Claude Code AI (it may run three tasks at once)"
run aictl ai register claude-1 --connector claude-code --max-concurrency 3

say "A dependency graph; 'src/*/util.py' overlaps 'src/api/**' and 'src/web/**'"
aictl task create "Design the schema"       --path db/schema.sql        --path notes/1.md --priority 9 -q >/dev/null
aictl task create "Write the migration"     --path 'db/migrations/*.sql' --path notes/2.md --depends-on 1 -q >/dev/null
aictl task create "API endpoints"           --path 'src/api/**'         --path notes/3.md --depends-on 1 -q >/dev/null
aictl task create "API tests"               --path 'tests/api/**'       --path notes/4.md --depends-on 3 -q >/dev/null
aictl task create "Web page"                --path 'src/web/**'         --path notes/5.md --depends-on 1 -q >/dev/null
aictl task create "Refactor shared helpers" --path 'src/*/util.py'      --path notes/6.md --priority 5 -q >/dev/null
aictl task create "User guide"              --path 'docs/**'            --path notes/7.md --depends-on 2 --depends-on 4 --depends-on 5 -q >/dev/null
aictl task create "Release notes"           --path CHANGELOG.md         --path notes/8.md --depends-on 7 -q >/dev/null
run aictl task graph

say "Start the daemon (in the background; its log follows)"
run aictl daemon start --concurrency 3
aictl daemon logs --follow --lines 100 &
follow_pid=$!

# The migration (task 2) is parked by the policy when the daemon reaches it: approve it then.
approved=""
for _ in $(seq 1200); do
    if [ -z "$approved" ] && [ "$(aictl task show 2 --json | field approval)" = pending ]; then
        sleep 1
        printf '\n  (task 2 awaits approval: a person approves it)\n'
        run aictl task approve 2
        approved=yes
    fi
    left=$(aictl task list --status queued --status claimed --status running --status blocked -q | wc -l)
    [ "$left" -eq 0 ] && break
    sleep 0.5
done
sleep 1
kill "$follow_pid" 2>/dev/null || true
wait "$follow_pid" 2>/dev/null || true
follow_pid=""

say "Progress as the daemon sees it, and its health endpoint"
run aictl daemon status
health_port=$(aictl daemon status --json | field port)
"$python" - "$health_port" <<'PY'
import json, sys, urllib.request
base = f"http://127.0.0.1:{sys.argv[1]}"
print("$ GET /health")
print(json.dumps(json.load(urllib.request.urlopen(base + "/health")), indent=1)[:600])
print("$ GET /metrics (excerpt)")
for line in urllib.request.urlopen(base + "/metrics").read().decode().splitlines():
    if line.startswith(("aictl_tasks{", "aictl_executions_total", "aictl_decisions_total",
                        "aictl_cost_usd_total", "aictl_claims_total")):
        print(" ", line)
PY
run aictl daemon stop

say "Every task done once, in dependency order"
run aictl task list
run aictl task watch --once

say "Evidence: what each agent changed, from git, not from the model's words"
for id in $(aictl task list -q); do aictl task evidence "$id" --json; echo; done | "$python" -c '
import json, sys
for line in sys.stdin:
    if not line.strip():
        continue
    e = json.loads(line)
    agent, files = e["agent"], ", ".join(e["files_changed"]) or "none"
    print(f"  task {e['"'"'task_id'"'"']}: agent {agent['"'"'status'"'"']}, {agent['"'"'num_turns'"'"']} turns, "
          f"${agent['"'"'total_cost_usd'"'"'] or 0:.4f}; files changed: {files}; tests {e['"'"'tests'"'"']['"'"'status'"'"']}")
'
run aictl task evidence 3

say "Each agent worked in its own git worktree; aictl committed and merged each one"
run aictl worktree list
run git log --graph --oneline --format='%h %s' -n 30
run git status --short
run aictl worktree prune

say "Every decision is on record, and the audit log's hash chain is intact"
run aictl policy decisions --task 2
run aictl audit log --task 2
run aictl audit verify
