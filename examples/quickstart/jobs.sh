# Warren quick start: a tiny parameter study in three phases.
# `wait` lines are barriers: nothing after one starts before everything before it is done.

mkdir -p results
wait

# One "simulation" per seed: estimate pi by throwing random darts (runs in parallel).
awk -v seed=1 'BEGIN { srand(seed); for (i = 0; i < 400000; i++) { x = rand(); y = rand(); if (x*x + y*y < 1) hit++ } printf "%d %.5f\n", seed, 4 * hit / i }' > results/seed-1.txt
awk -v seed=2 'BEGIN { srand(seed); for (i = 0; i < 400000; i++) { x = rand(); y = rand(); if (x*x + y*y < 1) hit++ } printf "%d %.5f\n", seed, 4 * hit / i }' > results/seed-2.txt
awk -v seed=3 'BEGIN { srand(seed); for (i = 0; i < 400000; i++) { x = rand(); y = rand(); if (x*x + y*y < 1) hit++ } printf "%d %.5f\n", seed, 4 * hit / i }' > results/seed-3.txt
awk -v seed=4 'BEGIN { srand(seed); for (i = 0; i < 400000; i++) { x = rand(); y = rand(); if (x*x + y*y < 1) hit++ } printf "%d %.5f\n", seed, 4 * hit / i }' > results/seed-4.txt
awk -v seed=5 'BEGIN { srand(seed); for (i = 0; i < 400000; i++) { x = rand(); y = rand(); if (x*x + y*y < 1) hit++ } printf "%d %.5f\n", seed, 4 * hit / i }' > results/seed-5.txt
awk -v seed=6 'BEGIN { srand(seed); for (i = 0; i < 400000; i++) { x = rand(); y = rand(); if (x*x + y*y < 1) hit++ } printf "%d %.5f\n", seed, 4 * hit / i }' > results/seed-6.txt
awk -v seed=7 'BEGIN { srand(seed); for (i = 0; i < 400000; i++) { x = rand(); y = rand(); if (x*x + y*y < 1) hit++ } printf "%d %.5f\n", seed, 4 * hit / i }' > results/seed-7.txt
awk -v seed=8 'BEGIN { srand(seed); for (i = 0; i < 400000; i++) { x = rand(); y = rand(); if (x*x + y*y < 1) hit++ } printf "%d %.5f\n", seed, 4 * hit / i }' > results/seed-8.txt
wait

# Merge: the mean of all estimates.
cat results/seed-*.txt | awk '{ sum += $2; n++ } END { printf "%d runs, pi is about %.5f\n", n, sum / n }' > results/summary.txt
