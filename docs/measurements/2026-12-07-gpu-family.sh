#!/bin/sh
# Issue 12 section 4: the GPU family's kernels against the ones they replace, in one run, on the
# two OpenCL CPU devices here (rusticl on llvmpipe: GPU-like limits; PoCL: a CPU). Not a target
# (neither is a GPU); a regression is a smell. Usage: sh docs/measurements/2026-12-07-gpu-family.sh
# [clattn binary] [rusticl|pocl|both]. Small shapes: llvmpipe is slow at everything.
C=${1:-build-dev/samples/clattn}
WHICH=${2:-both}
uptime
one() { # $1: label, $2: env prefix, $3: --device selector
  echo "== $1: softmax, register-tiled (tiled-gpu) vs one row per item (tiled-gpu-rows)"
  for d in 64 128; do
    env $2 $C bench softmax --n 1024 --d $d --variants tiled-gpu,tiled-gpu-rows --reps 3 --device "$3" 2>&1 | grep -E "^softmax"
  done
  for k in rows tiled; do
    echo "== $1: routing attend kernel $k"
    env $2 CLATTN_ROUTING_ATTEND_KERNEL=$k $C bench routing --n 1024 --d 64 --heads 4 --variants routing --reps 3 --device "$3" 2>&1 | grep -E "^routing"
    echo "== $1: LSH attend kernel $k"
    env $2 CLATTN_LSH_ATTEND_KERNEL=$k $C bench lsh --n 1024 --d 64 --heads 4 --hashes 2 --buckets 32 --chunk 64 --variants lsh --reps 3 --device "$3" 2>&1 | grep -E "^lsh"
    echo "== $1: linear output kernel $k (non-causal, momentum 0.5)"
    env $2 CLATTN_LINEAR_OUT_KERNEL=$k $C bench linear --n 512 --d 64 --heads 8 --momentum 0.5 --variants noncausal --reps 3 --device "$3" 2>&1 | grep -E "^linear"
  done
}
[ "$WHICH" = pocl ] || one rusticl "OCL_ICD_VENDORS=/etc/OpenCL/vendors/rusticl.icd RUSTICL_ENABLE=llvmpipe" rusticl
[ "$WHICH" = rusticl ] || one PoCL "CLATTN_UNUSED=1" "Portable Computing Language"
uptime
