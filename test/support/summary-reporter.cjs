// Prints one plain closing line, "jest: N passed, N failed, N skipped", after the run, and names
// whatever is still open in the runner's process then (a child process, a socket, a server, a
// timer): with `forceExit` the run ends anyway, and this line says what a test file left behind.
class SummaryReporter {
  onRunComplete(_contexts, r) {
    // Suites that never reported (a broken transform, an interrupted run) count as failures too.
    const unrun =
      r.numTotalTestSuites - r.numPassedTestSuites - r.numFailedTestSuites - r.numPendingTestSuites;
    const failed = r.numFailedTests + r.numRuntimeErrorTestSuites + Math.max(0, unrun);
    const skipped = r.numPendingTests + r.numTodoTests;
    process.stdout.write(
      `\njest: ${r.numPassedTests} passed, ${failed} failed, ${skipped} skipped\n`,
    );
    const open = openHandles();
    if (open.length > 0) {
      process.stdout.write(`jest: still open after the run: ${open.join('; ')}\n`);
    }
  }
}

function openHandles() {
  // process._getActiveHandles is Node's only list of live handles with their objects.
  const handles =
    typeof process._getActiveHandles === 'function' ? process._getActiveHandles() : [];
  return handles
    .filter((h) => h !== process.stdout && h !== process.stderr && h !== process.stdin)
    .map(describe);
}

function describe(h) {
  const kind = h?.constructor?.name ?? typeof h;
  if (kind === 'ChildProcess') {
    return `ChildProcess pid ${h.pid} ${(h.spawnargs ?? []).join(' ').slice(0, 200)}`;
  }
  if (kind === 'Socket' || kind === 'TLSSocket') {
    if (h.remotePort) return `${kind} to ${h.remoteAddress}:${h.remotePort}`;
    return `${kind}${h._handle?.constructor?.name ? ` (${h._handle.constructor.name})` : ''}${h.fd !== undefined ? ` fd ${h.fd}` : ''}`;
  }
  if (kind === 'Server') {
    const a = h.address?.();
    return `Server ${a && typeof a === 'object' ? `on ${a.address}:${a.port}` : String(a)}`;
  }
  if (kind === 'Timeout') {
    return `Timeout ${h._idleTimeout} ms ${String(h._onTimeout?.name || h._onTimeout).slice(0, 120)}`;
  }
  return kind;
}

module.exports = SummaryReporter;
