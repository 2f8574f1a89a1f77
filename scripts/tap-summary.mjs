// Reads tap's TAP output and prints the closing line "N passed, N failed, N skipped".
// Exits non-zero when anything failed or when no test ran at all.
import fs from 'node:fs'

const text = fs.readFileSync(process.argv[2], 'utf8')
const m = [...text.matchAll(/^# \{ total: (\d+), pass: (\d+)(?:, fail: (\d+))?(?:, todo: (\d+))?(?:, skip: (\d+))?.*\}$/gm)].pop()
if (!m) {
  console.log('0 passed, 1 failed')
  console.error('tap printed no summary: the run did not complete')
  process.exit(1)
}
const total = Number(m[1])
const pass = Number(m[2])
const fail = Number(m[3] ?? 0)
const skip = Number(m[5] ?? 0)
console.log(`${pass} passed, ${fail} failed, ${skip} skipped`)
process.exit(fail > 0 || total === 0 ? 1 : 0)
