#!/usr/bin/env bash
# `make demo`: a scripted walk through aictl on a throw-away repository.
# A small dependency graph is created under a policy that gates database migrations; three
# concurrent workers claim and complete it, respecting dependencies and path locks, while a
# person approves the gated task. Then lease fencing refuses a stale worker, and the decision
# records and the tamper-evident audit log are shown and verified.
set -euo pipefail

repo=$(mktemp -d "${TMPDIR:-/tmp}/aictl-demo.XXXXXX")
trap 'rm -rf "$repo"' EXIT
cd "$repo"
git init -q .

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

say "Initialise aictl in a throw-away repository ($repo)"
run aictl init

say "A policy: database migrations need a person's approval before an agent claims them"
cat > .ai/policy.yaml <<'YAML'
version: 1
default: allow
rules:
  - id: migrations-need-approval
    actions: [claim]
    when: touches(task.paths, "db/migrations/**")
    effect: require_approval
    reason: migrations are irreversible in production
YAML
run aictl policy validate

say "Create a small dependency graph; some tasks touch overlapping files"
aictl task create "Design the schema"       --path 'db/schema.sql' --priority 9 -q >/dev/null
aictl task create "Write the migration"     --path 'db/migrations/*.sql' --depends-on 1 -q >/dev/null
aictl task create "API endpoints"           --path 'src/api/**' --depends-on 1 --label area=api -q >/dev/null
aictl task create "API tests"               --path 'tests/api/**' --depends-on 3 --label area=api -q >/dev/null
aictl task create "Web page"                --path 'src/web/**' --depends-on 1 --label area=web -q >/dev/null
aictl task create "Refactor shared helpers" --path 'src/*/util.py' --priority 5 -q >/dev/null
aictl task create "User guide"              --path 'docs/**' --depends-on 2 --depends-on 4 --depends-on 5 -q >/dev/null
aictl task create "Release notes"           --path 'CHANGELOG.md' --depends-on 7 -q >/dev/null
run aictl task list
run aictl task graph

say "Path locks are exact: 'src/*/util.py' overlaps 'src/api/**' but not 'docs/**'"
token=$(aictl task claim 6 --as inspector -q)
run aictl lock list
run aictl lock check 'src/api/**' 'docs/**' || echo "(exit $?: a held lock overlaps)"
aictl task release 6 --lease "$token" -q >/dev/null

say "Three workers claim, run and complete the tasks concurrently"
worker() {
    local name=$1 token id title code
    while true; do
        if token=$(aictl task claim --as "$name" --ttl 30s -q 2>/dev/null); then
            id=${token%%:*}
            aictl task start "$id" --lease "$token" -q >/dev/null
            title=$(aictl task show "$id" --json | python -c 'import json,sys; print(json.load(sys.stdin)["title"])')
            printf '  %-8s claimed   task %s (%s), lease %s\n' "$name" "$id" "$title" "$token"
            sleep "0.$((RANDOM % 5 + 3))"
            aictl task complete "$id" --lease "$token" --result "done by $name" -q >/dev/null
            printf '  %-8s completed task %s\n' "$name" "$id"
        else
            code=$?
            if [ "$code" -ne 5 ]; then echo "  $name: unexpected exit $code" >&2; return 1; fi
            # exit 5: nothing ready now; stop when nothing is left to do at all
            if [ -z "$(aictl task list --status queued --status claimed --status running -q)" ]; then
                return 0
            fi
            sleep 0.2
        fi
    done
}
worker alpha & a=$!
worker beta & b=$!
worker gamma & c=$!

# The migration (task 2) is parked by the policy when a worker reaches it; approve it then.
for _ in $(seq 300); do
    approval=$(aictl task show 2 --json | python -c 'import json,sys; print(json.load(sys.stdin)["approval"])')
    [ "$approval" = pending ] && break
    sleep 0.2
done
[ "$approval" = pending ] || { echo "task 2 never reached approval" >&2; exit 1; }
echo "  (task 2 awaits approval: a person approves it)"
run aictl task approve 2
wait "$a" "$b" "$c"

say "Every task done exactly once, in dependency order"
run aictl task list

say "Fencing: a worker whose lease expired cannot complete after another claimed the task"
aictl task create "Flaky job" -q >/dev/null
stale=$(aictl task claim 9 --as slow-worker --ttl 1s -q)
echo "slow-worker holds lease $stale and stalls past its TTL..."
sleep 1.2
fresh=$(aictl task claim 9 --as fast-worker -q)
echo "fast-worker claimed the task again with lease $fresh"
run aictl task complete 9 --lease "$stale" || echo "(exit $?: the stale worker is refused, nothing changed)"
aictl task start 9 --lease "$fresh" -q >/dev/null
run aictl task complete 9 --lease "$fresh" --result "done once"
run aictl task show 9

say "Every decision is on record, and the audit log's hash chain is intact"
run aictl policy decisions --task 2
run aictl audit log --task 2
run aictl audit verify
