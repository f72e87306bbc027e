#!/bin/sh
# Quiet-machine figures for issues 11-14; run from /work/main with build-dev built. Output: stdout (this run: docs/measurements/2026-12-06-quiet.log)
cd "$(dirname "$0")/../.."
B=${BEFORE:-/work/before/build/samples/clattn}   # a build of the commit to compare with (here 3011525)
A=build-dev/samples/clattn
export CLATTN_DEVICE="Portable Computing Language"
echo "== start $(uptime)"; echo "before $(git -C /work/before log --oneline -1)"; echo "after $(git log --oneline -1)"
for d in 64 128; do for c in "" "--causal"; do
  echo "== softmax D$d $c before"; $B bench softmax --n 1024,4096 --heads 8 --d $d $c --variants tiled,peak --reps 3
  echo "== softmax D$d $c after";  $A bench softmax --n 1024,4096 --heads 8 --d $d $c --variants tiled,peak --reps 3
done; done
for c in noncausal causal; do
  echo "== linear $c before"; $B bench linear --n 16384,65536 --heads 8 --d 64 --variants $c,peak --feature-map elu --reps 3
  echo "== linear $c after";  $A bench linear --n 16384,65536 --heads 8 --d 64 --variants $c,peak --feature-map elu --reps 3
done
echo "== peers $(uptime)"
python3 samples/bench_peers.py --venv /work/peers-venv --clattn $A --reps 3 --skip-peer numpy --csv build/peers.csv
echo "== mgk"; $A bench mgk --n 4096 --d 64 --heads 8 --r 2 --reps 3; $A bench mgk --n 4096 --d 64 --heads 8 --r 2 --reps 3 --causal
$A bench mgk --linear --n 16384 --d 64 --heads 8 --r 2 --reps 3; $A bench mgk --linear --n 16384 --d 64 --heads 8 --r 2 --reps 3 --causal
echo "== deq"; $A bench deq --n 1024 --d 64
echo "== s4"; $A bench ssm --s4 --n 1024,4096,16384,65536 --state 64 --heads 1
echo "== end $(uptime)"
echo "== gpu family old vs new, PoCL"; $A bench softmax --n 1024,2048,4096 --d 64 --heads 8 --variants tiled-gpu,tiled-gpu-rows --reps 3
$A bench softmax --n 1024,2048,4096 --d 128 --heads 8 --variants tiled-gpu,tiled-gpu-rows --reps 3
echo "== gpu family old vs new, rusticl"
OCL_ICD_VENDORS=/etc/OpenCL/vendors/rusticl.icd RUSTICL_ENABLE=llvmpipe CLATTN_DEVICE=rusticl $A bench softmax --n 512,1024 --d 64 --heads 8 --variants tiled-gpu,tiled-gpu-rows --reps 3 --device rusticl
echo "== rpe direct rows vs tiled, rusticl and PoCL"
for k in rows tiled; do OCL_ICD_VENDORS=/etc/OpenCL/vendors/rusticl.icd RUSTICL_ENABLE=llvmpipe CLATTN_DEVICE=rusticl CLATTN_RPE_DIRECT_KERNEL=$k $A bench rpe --n 1024 --d 64 --dv 64 --variants direct --reps 3 --device rusticl; done
for k in rows tiled; do CLATTN_RPE_DIRECT_KERNEL=$k $A bench rpe --n 1024,4096 --d 64 --dv 64 --variants direct --reps 3; done
echo "== python overhead"
$A bench softmax --n 128,4096 --d 64 --heads 8 --variants tiled --reps 30
CLATTN_LIBRARY=$PWD/build-dev/libclattn.so PYTHONPATH=$PWD/python/src build-dev/pyvenv/bin/python python/examples/overhead.py --n 128,4096 --d 64 --heads 8 --reps 30
echo "== end2 $(uptime)"
