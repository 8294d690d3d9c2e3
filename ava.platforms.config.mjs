// ava's configuration for the arm64 run under qemu (scripts/test-platforms.js): worker
// threads instead of child processes, because qemu-user cannot exec a spawned arm64 Node,
// and the test files that themselves spawn Node left out (SEGWAL_AVA_FILES names the rest).
export default {
  files: process.env.SEGWAL_AVA_FILES ? process.env.SEGWAL_AVA_FILES.split(',') : ['__test__/**/*.test.mjs'],
  workerThreads: true,
  concurrency: 2,
  timeout: '10m',
}
