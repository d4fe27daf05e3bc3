#!/bin/sh
# A stand-in climate model for one point (x, y) of a 2-D parameter grid: "stable" inside an
# irregular region around the Earth-like start point (0, 0), "unstable" outside it. A stable
# point writes its four neighbours to $WARREN_SPAWN; Warren runs them in the same phase,
# unless the run explored them already.
x=$1
y=$2
state=$(awk -v x="$x" -v y="$y" 'BEGIN { r = x*x/16 + y*y/6 + 0.08*x*y - 0.05*x; print (r <= 1) ? "stable" : "unstable" }')
mkdir -p results
echo "$state" > "results/$x,$y"
if [ "$state" = stable ]; then
  for step in "1 0" "-1 0" "0 1" "0 -1"; do
    set -- $step
    echo "./explore.sh $((x + $1)) $((y + $2))" >> "$WARREN_SPAWN"
  done
fi
