#!/bin/sh
# Draws the explored region: S stable, . unstable, @ the Earth-like start, blank unexplored.
for y in 5 4 3 2 1 0 -1 -2 -3 -4 -5; do
  line=""
  for x in -6 -5 -4 -3 -2 -1 0 1 2 3 4 5 6; do
    if [ "$x,$y" = "0,0" ]; then cell="@"
    elif [ -f "results/$x,$y" ]; then
      if [ "$(cat "results/$x,$y")" = stable ]; then cell="S"; else cell="."; fi
    else cell=" "; fi
    line="$line$cell"
  done
  echo "$line"
done
echo "explored $(ls results | wc -l) points, $(grep -l '^stable' results/* | wc -l) stable"
