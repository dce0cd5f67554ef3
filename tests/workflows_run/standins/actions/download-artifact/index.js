// Stand-in for actions/download-artifact v8 (the release's bundle is not obtainable offline): upstream
// src/download-artifact.ts (MIT) for artifacts of the current run, on @actions/artifact 6, talking to the
// artifact stand-in (tests/workflows_run/standins/artifacts.py). Not implemented (fail loudly): github-token,
// repository and run-id (artifacts of other runs), artifact-ids, skip-decompress.
import * as os from 'node:os'
import * as path from 'node:path'
import * as core from '@actions/core'
import artifact from '@actions/artifact'
import {Minimatch} from 'minimatch'
import {requireDefault, run} from './common.js'

const DIGEST_BEHAVIOURS = ['ignore', 'info', 'warn', 'error']

function readInputs() {
  requireDefault('github-token', '', 'artifacts of other runs or repositories')
  requireDefault('artifact-ids', '', 'not used by these workflows')
  requireDefault('skip-decompress', 'false', 'not used by these workflows')
  requireDefault('repository', process.env.GITHUB_REPOSITORY, 'artifacts of this repository only')
  requireDefault('run-id', process.env.GITHUB_RUN_ID, 'artifacts of this run only')
  const digestMismatch = core.getInput('digest-mismatch') || 'error'
  if (!DIGEST_BEHAVIOURS.includes(digestMismatch)) {
    throw new Error(`Invalid value for 'digest-mismatch': '${digestMismatch}'. Valid options are: ${DIGEST_BEHAVIOURS.join(', ')}`)
  }
  let target = core.getInput('path') || process.env.GITHUB_WORKSPACE || process.cwd()
  if (target.startsWith('~')) target = target.replace('~', os.homedir())
  return {
    name: core.getInput('name'),
    pattern: core.getInput('pattern'),
    mergeMultiple: core.getBooleanInput('merge-multiple'),
    digestMismatch,
    path: path.resolve(target)
  }
}

async function main() {
  const inputs = readInputs()
  let artifacts
  if (inputs.name) {
    const {artifact: found} = await artifact.getArtifact(inputs.name)
    artifacts = [found]
  } else {
    artifacts = (await artifact.listArtifacts({latest: true})).artifacts
    if (inputs.pattern) {
      core.info(`Filtering artifacts by pattern '${inputs.pattern}'`)
      const matcher = new Minimatch(inputs.pattern)
      artifacts = artifacts.filter(a => matcher.match(a.name))
    }
  }
  // Upstream: one folder per artifact unless a single one was asked for (or matched), or merge-multiple;
  // each download's sha256 is checked against the digest the store recorded.
  const flat = Boolean(inputs.name) || inputs.mergeMultiple || artifacts.length === 1
  const mismatches = []
  for (const found of artifacts) {
    core.info(`- ${found.name} (ID: ${found.id}, Size: ${found.size}, Expected Digest: ${found.digest})`)
    const target = flat ? inputs.path : path.join(inputs.path, found.name)
    const outcome = await artifact.downloadArtifact(found.id, {path: target, expectedHash: found.digest})
    if (outcome.digestMismatch) {
      mismatches.push(found.name)
      const message = `Artifact '${found.name}' digest validation failed. Please verify the integrity of the artifact.`
      if (inputs.digestMismatch === 'info') core.info(message)
      if (inputs.digestMismatch === 'warn') core.warning(message)
    }
  }
  if (mismatches.length > 0 && inputs.digestMismatch === 'error') {
    throw new Error(`Digest validation failed for artifact(s): ${mismatches.join(', ')}.`)
  }
  core.info(`Total of ${artifacts.length} artifact(s) downloaded`)
  core.setOutput('download-path', inputs.path)
}

run(main)
