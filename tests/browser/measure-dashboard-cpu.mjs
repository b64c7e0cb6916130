// Not a test: the dashboard's CPU cost to the server. Runs `pushcore serve --dashboard` with 50
// idle subscribers, reads the process's utime+stime from /proc/PID/stat over SECS seconds
// without a viewer, then again with the dashboard open in Chromium.
//   node measure-dashboard-cpu.mjs [SECS]
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { Env, sleep } from './helpers.mjs';

const secs = Number(process.argv[2] || 30);
const hz = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());
const cpuSecs = (pid) => {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / hz; // utime, stime (fields 14, 15)
};
async function sample(pid) {
  const c0 = cpuSecs(pid), t0 = performance.now();
  await sleep(secs * 1000);
  return (cpuSecs(pid) - c0) / ((performance.now() - t0) / 1000);
}

const env = new Env();
try {
  const server = await env.server(['--dashboard']);
  for (let i = 0; i < 50; i++) await env.rawSubscriber(server, 'channels=load');
  await sleep(2000);
  const idle = await sample(server.pid);
  const page = await (await env.browser()).newPage();
  await page.goto(`${server.url}/dashboard`);
  await sleep(3000);
  const open = await sample(server.pid);
  console.log(JSON.stringify({
    seconds: secs,
    serverCpuSecsPerSecNoViewer: Number(idle.toFixed(5)),
    serverCpuSecsPerSecDashboardOpen: Number(open.toFixed(5)),
    dashboardCostCpuSecsPerSec: Number((open - idle).toFixed(5)),
  }));
} finally {
  await env.close();
}
