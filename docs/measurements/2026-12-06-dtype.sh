#!/bin/sh
# Quiet-machine figures for issue 15 (half-precision storage); run from the repository root with
# build-dev built. Every comparison is one invocation: f32, f16 and bf16 timed in the same run.
cd "$(dirname "$0")/../.."
A=build-dev/samples/clattn
export CLATTN_DEVICE="Portable Computing Language"
echo "== start $(uptime)"; echo "commit $(git log --oneline -1)"
echo "== softmax N 4096 H 8 D 64 (compute-bound)"
$A bench softmax --n 4096 --heads 8 --d 64 --dtype f32,f16,bf16 --variants tiled,peak --reps 5
echo "== softmax single query over Nk 65536, H 8 D 64 (bandwidth-bound)"
$A bench softmax --n 65536 --nq 1 --heads 8 --d 64 --dtype f32,f16,bf16 --variants tiled --reps 5
echo "== linear non-causal N 65536 H 8 D 64"
$A bench linear --n 65536 --heads 8 --d 64 --feature-map elu --variants noncausal,peak --dtype f32,f16,bf16 --reps 5
echo "== others, f32 vs f16 vs bf16"
$A bench rpe --n 4096 --d 64 --dv 64 --dtype f32,f16,bf16 --reps 3
$A bench lsh --n 16384 --dtype f32,f16,bf16 --reps 3
$A bench routing --n 16384 --dtype f32,f16,bf16 --reps 3
$A bench ssm --n 16384,65536 --variants fft,direct --max-direct 16384 --dtype f32,f16,bf16 --reps 3
$A bench gss --n 4096 --variants gss --dtype f32,f16,bf16 --reps 3
$A bench mgk --n 4096 --d 64 --heads 8 --r 2 --dtype f32,f16,bf16 --reps 3
echo "== end $(uptime)"
