#!/bin/sh
# A stand-in for one frame of a render farm (cloud-surge's shape): writes frames/NNNN.ppm, a
# small image whose colour depends on the frame number.
n=$1
mkdir -p frames
printf 'P3\n4 4\n255\n' > "frames/$n.ppm.tmp"
i=0
while [ $i -lt 16 ]; do
  echo "$((n * 7 % 256)) $((n * 13 % 256)) $((n * 29 % 256))" >> "frames/$n.ppm.tmp"
  i=$((i + 1))
done
mv "frames/$n.ppm.tmp" "frames/$n.ppm"
