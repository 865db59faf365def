// Jest environment that fails a test file which ends with tracked resources still open
// (see test/support/leaks.ts). It runs after every afterAll hook of the file.
const { TestEnvironment } = require('jest-environment-node');

class LeakCheckingEnvironment extends TestEnvironment {
  async handleTestEvent(event, state) {
    if (event.name !== 'run_finish') return;
    const open = this.global.__hubOpenResources;
    if (open && open.size > 0) {
      state.unhandledErrors.push(
        new Error(
          `test file left resources open: ${[...open.values()].join(', ')} (stop workers, close pools)`,
        ),
      );
    }
  }
}

module.exports = LeakCheckingEnvironment;
