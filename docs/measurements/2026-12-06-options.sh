#!/bin/sh
# Quiet-machine figures for issue 16 (options of exact attention) and issue 17 section 4 (batched
# decoding states); run from the repository root with build-dev built. Each ratio is measured in
# one invocation (both sides timed in the same run, on the same device).
cd "$(dirname "$0")/../.."
A=build-dev/samples/clattn
export CLATTN_DEVICE="Portable Computing Language"
echo "== start $(uptime)"; echo "commit $(git log --oneline -1)"
echo "== window (4096-key causal window, N 16k/32k/64k, H 8 D 64, AUTO = TILED_CPU)"
$A bench softmax --variants window --reps 2
echo "== blocksparse (64x64 blocks, N 8192, densities 10/25/50/100%)"
$A bench softmax --variants blocksparse --reps 2
echo "== bias ([1,1,N,N] f32 bias vs none, N 4096)"
$A bench softmax --variants bias --reps 3
echo "== head dims 128/256/512 (N 2048) as fractions of peak"
$A bench softmax --variants d512 --reps 2
echo "== batched decoding states: linear and SSM step per token, B 1 and 64"
$A bench decode --heads 32 --kv-heads 8 --d 128 --batch 1,64 --variants linear-step,ssm-step --reps 20
echo "== decoding (issue 17 section 1, split-KV on TILED_CPU): one query per head, B 1"
$A bench decode --context 16384,65536 --heads 8 --kv-heads 8 --d 128 --batch 1 --variants bandwidth,unsplit,split --reps 5
echo "== end $(uptime)"
