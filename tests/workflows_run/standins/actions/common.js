// Shared by the upload-artifact and download-artifact stand-ins (copied next to each index.js at run time).
import * as core from '@actions/core'

// @actions/artifact refuses GitHub Enterprise Server hosts (GHESNotSupportedError), and act's
// --github-instance makes GITHUB_SERVER_URL look like one. The artifact stand-in speaks github.com's
// protocol (artifacts v4), so the library is told it runs on github.com; URLs shown to users keep the real one.
export const realServerUrl = process.env.GITHUB_SERVER_URL || 'https://github.com'
process.env.GITHUB_SERVER_URL = 'https://github.com'

// Inputs the stand-in does not implement must keep their upstream default; anything else fails the step.
export function requireDefault(name, defaultValue, reason) {
  const value = core.getInput(name)
  if (value !== defaultValue) {
    throw new Error(`input '${name}: ${value}' is not supported by this stand-in (${reason}); only '${defaultValue}' is`)
  }
}

export function run(main) {
  main().catch(error => core.setFailed(error.message))
}
