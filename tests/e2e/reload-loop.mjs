// Flake hunting, not a test (scripts/browser-test does not run it): one clinic on a fresh
// server, then N times "admit, both receive media, the patient reloads, both receive media
// again, end", counting passes and printing the call diagnostics of each failure.
//
//   cargo build --bin examroom && cd tests/e2e && \
//     EXAMROOM_BIN=../../target/debug/examroom node reload-loop.mjs 30
//
// THROTTLE=4 slows the physician's page with CDP CPU throttling; run busy loops beside it
// (`yes >/dev/null &` per core) to reproduce a loaded CI machine.
import { launch, newContext, receivesMedia, startServer, setUpClinic, patientWaits, signallingLog, callDiagnostics } from './support.mjs';

const loops = Number(process.argv[2] || 10);
const throttle = Number(process.env.THROTTLE || 0);
process.env.TMPDIR ||= (await import('node:os')).tmpdir();
const server = await startServer({ EXAMROOM__IDENTITY__TOKEN_SECRET: 'reload-loop-secret-reload-loop-secret', RUST_LOG: 'info' });
const browser = await launch();
const log = [];
const signalling = [];
let pass = 0;
try {
  const { doc, docCtx } = await setUpClinic(browser, server, log);
  signallingLog(doc, 'physician', signalling);
  if (throttle) await (await docCtx.newCDPSession(doc)).send('Emulation.setCPUThrottlingRate', { rate: throttle });
  // The physician's socket opened before the log was attached: reload to see it.
  await doc.reload();
  await doc.waitForSelector('#app:not([hidden])');
  for (let i = 0; i < loops; i++) {
    signalling.length = 0;
    let stage = 'waiting';
    let patient = null;
    const t0 = Date.now();
    try {
      ({ patient } = await patientWaits(browser, server, doc, log, { name: `Patient ${i}`, reason: 'loop', onPage: (p) => signallingLog(p, 'patient', signalling) }));
      const visit = await doc.locator('.queue li', { hasText: `Patient ${i}` }).getAttribute('data-visit');
      stage = 'first connection';
      await doc.click(`#admit-${visit}`);
      await patient.waitForSelector('#s-call:not([hidden])');
      await receivesMedia(patient);
      await receivesMedia(doc);
      stage = 'after the reload';
      const r0 = Date.now();
      await patient.reload();
      await patient.waitForSelector('#s-call:not([hidden])', { timeout: 20000 });
      await receivesMedia(patient);
      await receivesMedia(doc);
      const resumed = Date.now() - r0;
      stage = 'end';
      await doc.click('#end-visit');
      await doc.getByRole('dialog').getByRole('button', { name: /End visit|Terminar/ }).click();
      await doc.waitForSelector('#lobby:not([hidden])');
      pass += 1;
      console.log(`loop ${i}: ok (media again ${resumed} ms after the reload; ${Date.now() - t0} ms in all)`);
    } catch (e) {
      console.log(`loop ${i}: FAILED at ${stage}: ${e.message.split('\n')[0]}`);
      if (patient) console.log(await callDiagnostics({ physician: doc, patient }, signalling));
      if (await doc.isVisible('#end-visit')) {
        await doc.click('#end-visit');
        await doc.getByRole('dialog').getByRole('button', { name: /End visit|Terminar/ }).click().catch(() => {});
        await doc.waitForSelector('#lobby:not([hidden])', { timeout: 10000 }).catch(() => {});
      }
    }
    await patient?.context().close();
  }
} finally {
  console.log(`${pass} of ${loops} passed`);
  if (log.length) console.log(log.join('\n'));
  await browser.close();
  await server.stop();
}
