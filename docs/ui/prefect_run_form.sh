#!/usr/bin/env bash
# Screenshot of the Prefect UI's custom-run form of the retrain deployment, from a real server:
# `prefect server start` on 127.0.0.1, `python flows/retrain_flow.py` serving the deployment, headless
# Chromium on /deployments/deployment/<id>/run. Both servers are stopped by process group.
# Run from the repository root: bash docs/ui/prefect_run_form.sh [PORT]   (writes docs/ui/prefect_retrain_custom_run.png)
set -u
PORT=${1:-4299}
WORK=$(mktemp -d)
export PREFECT_HOME=$WORK/home PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1
export PREFECT_UI_API_URL=http://127.0.0.1:$PORT/api MLFLOW_TRACKING_URI=sqlite:///$WORK/mlflow.db
setsid prefect server start --host 127.0.0.1 --port "$PORT" > "$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 120); do curl -sf "http://127.0.0.1:$PORT/api/health" > /dev/null && break; sleep 1; done
export PREFECT_API_URL=http://127.0.0.1:$PORT/api
mkdir -p "$WORK/incoming" && cp data/houses.csv "$WORK/incoming/"
setsid python flows/retrain_flow.py --interval 3600 --data "$WORK/incoming/" > "$WORK/serve.log" 2>&1 &
SERVE=$!
for _ in $(seq 1 120); do grep -q "being served" "$WORK/serve.log" && break; sleep 1; done
ID=$(curl -s "http://127.0.0.1:$PORT/api/deployments/name/normflow-retrain/normflow-retrain" \
  | python -c "import sys, json; print(json.load(sys.stdin)['id'])")
chromium --headless --no-sandbox --disable-gpu --disable-background-networking --hide-scrollbars \
  --window-size=1400,2600 --virtual-time-budget=60000 \
  --screenshot=docs/ui/prefect_retrain_custom_run.png "http://127.0.0.1:$PORT/deployments/deployment/$ID/run" 2> /dev/null
kill -INT -- -"$SERVE" 2> /dev/null; sleep 5; kill -TERM -- -"$SERVE" 2> /dev/null
kill -TERM -- -"$SERVER" 2> /dev/null; sleep 3; kill -KILL -- -"$SERVER" 2> /dev/null
rm -rf "$WORK"
