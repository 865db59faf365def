// Prints one plain closing line, "jest: N passed, N failed, N skipped", after the run.
class SummaryReporter {
  onRunComplete(_contexts, r) {
    // Suites that never reported (a broken transform, an interrupted run) count as failures too.
    const unrun = r.numTotalTestSuites - r.numPassedTestSuites - r.numFailedTestSuites - r.numPendingTestSuites;
    const failed = r.numFailedTests + r.numRuntimeErrorTestSuites + Math.max(0, unrun);
    const skipped = r.numPendingTests + r.numTodoTests;
    process.stdout.write(`\njest: ${r.numPassedTests} passed, ${failed} failed, ${skipped} skipped\n`);
  }
}
module.exports = SummaryReporter;
