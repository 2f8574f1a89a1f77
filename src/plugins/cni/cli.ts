/**
 * Entry point of the `switchyard-cni` executable (bin/switchyard-cni.js): reads the network
 * configuration from stdin and CNI_* from the environment, prints the result or error, and
 * exits with its status. Logs nothing on stdout, which belongs to the runtime.
 */
import { runCni } from './plugin.js'

const chunks: Buffer[] = []
for await (const c of process.stdin) chunks.push(c as Buffer)
const { stdout, exitCode } = await runCni(process.env, Buffer.concat(chunks).toString('utf8'))
if (stdout) process.stdout.write(stdout + '\n')
process.exitCode = exitCode
