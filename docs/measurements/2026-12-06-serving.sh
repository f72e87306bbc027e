#!/bin/sh
# Issue 17 (serving) and issue 11 section 2 (fused linear) figures, PoCL on this machine, one run.
# NEW: main after the session-5 merges (Release build); OLD: 5aa9457 (before them), Release.
NEW=${NEW:-/tmp/newbuild/samples/clattn}
OLD=${OLD:-/tmp/oldsrc/build/samples/clattn}
echo "== start $(date -u) | $(uptime)"
echo "== decode B1 f32 (fold on)"
$NEW bench decode --context 4096,16384,65536 --heads 32 --kv-heads 8 --d 128 --batch 1 --page 16,128 --variants bandwidth,unsplit,split,paged --reps 5
echo "== decode B1 f32, GQA folding off (CLATTN_SOFTMAX_CPU_FOLD=0)"
CLATTN_SOFTMAX_CPU_FOLD=0 $NEW bench decode --context 4096,16384,65536 --heads 32 --kv-heads 8 --d 128 --batch 1 --page 0 --variants bandwidth,split --reps 5
echo "== decode B16 f32"
$NEW bench decode --context 4096,16384 --heads 32 --kv-heads 8 --d 128 --batch 16 --page 16,128 --variants bandwidth,unsplit,split,paged --reps 3
echo "== decode B16 f16 (64k: f32 K+V, its copy and the packed panels exceed this machine's 24 GiB)"
$NEW bench decode --context 65536 --heads 32 --kv-heads 8 --d 128 --batch 16 --page 16 --dtype f16 --variants bandwidth,split,paged --reps 3
echo "== decode, old binary (before this session), B1 f32"
$OLD bench decode --context 4096,16384,65536 --heads 32 --kv-heads 8 --d 128 --batch 1 --variants bandwidth,unsplit --reps 5
echo "== states step"
$NEW bench decode --heads 32 --kv-heads 8 --d 128 --batch 1,64 --variants linear-step,ssm-step --reps 20
echo "== linear fused (new) | $(uptime)"
$NEW bench linear --n 16384,65536 --variants causal,noncausal,peak --reps 5
echo "== linear chunked pipelines (CLATTN_LINEAR_CAUSAL/NONCAUSAL=chunked) | $(uptime)"
CLATTN_LINEAR_CAUSAL=chunked CLATTN_LINEAR_NONCAUSAL=chunked $NEW bench linear --n 16384,65536 --variants causal,noncausal,peak --reps 5
echo "== softmax without serving fields: old then new | $(uptime)"
$OLD bench softmax --n 1024,4096 --d 64 --variants tiled-cpu,peak --reps 5
$NEW bench softmax --n 1024,4096 --d 64 --variants tiled-cpu --reps 5
$OLD bench softmax --n 4096 --d 64 --causal --variants tiled-cpu --reps 5
$NEW bench softmax --n 4096 --d 64 --causal --variants tiled-cpu --reps 5
echo "== end $(date -u) | $(uptime)"
