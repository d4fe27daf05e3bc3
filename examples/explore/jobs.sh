# Adaptive exploration: start at the Earth-like point; every stable point adds its neighbours.
rm -rf results
wait
./explore.sh 0 0
wait
./map.sh > region.txt
