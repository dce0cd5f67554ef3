// Stand-in for actions/upload-artifact v7 (the release's bundle is not obtainable offline): the same inputs,
// file search and outputs as upstream src/upload (MIT), on the same library (@actions/artifact 6), talking to
// the artifact stand-in (tests/workflows_run/standins/artifacts.py). Not implemented (fails loudly): archive: false.
import * as fs from 'node:fs/promises'
import * as path from 'node:path'
import * as core from '@actions/core'
import * as glob from '@actions/glob'
import artifact, {ArtifactNotFoundError} from '@actions/artifact'
import {realServerUrl, requireDefault, run} from './common.js'

const NO_FILE_BEHAVIOURS = ['warn', 'error', 'ignore']

function readInputs() {
  requireDefault('archive', 'true', "act's server stores every artifact as a zip")
  const ifNoFilesFound = core.getInput('if-no-files-found') || 'warn'
  if (!NO_FILE_BEHAVIOURS.includes(ifNoFilesFound)) {
    throw new Error(
      `Unrecognized if-no-files-found input. Provided: ${ifNoFilesFound}. Available options: ${NO_FILE_BEHAVIOURS}`
    )
  }
  const inputs = {
    name: core.getInput('name') || 'artifact',
    searchPath: core.getInput('path', {required: true}),
    ifNoFilesFound,
    overwrite: core.getBooleanInput('overwrite'),
    includeHiddenFiles: core.getBooleanInput('include-hidden-files'),
    options: {}
  }
  const retentionDays = core.getInput('retention-days')
  if (retentionDays) {
    inputs.options.retentionDays = Number.parseInt(retentionDays, 10)
    if (Number.isNaN(inputs.options.retentionDays)) throw new Error('Invalid retention-days')
  }
  const compressionLevel = core.getInput('compression-level')
  if (compressionLevel) {
    const level = Number.parseInt(compressionLevel, 10)
    if (Number.isNaN(level) || level < 0 || level > 9) {
      throw new Error('Invalid compression-level. Valid values are 0-9')
    }
    inputs.options.compressionLevel = level
  }
  return inputs
}

// Upstream's least common ancestor of several search paths (src/shared/search.ts).
function commonAncestor(searchPaths) {
  const split = searchPaths.map(p => path.normalize(p).split(path.sep))
  const common = []
  for (let i = 0; i < Math.min(...split.map(parts => parts.length)); i++) {
    if (split.some(parts => parts[i] !== split[0][i])) break
    common.push(split[0][i])
  }
  return searchPaths[0].startsWith(path.sep) ? path.join(path.sep, ...common) : path.join(...common)
}

// Upstream's findFilesToUpload: globs (one pattern a line, `!` excludes), directories expanded, hidden files
// only when asked, and the artifact's root = the search path (or its LCA, or a single file's folder).
async function findFilesToUpload(searchPath, includeHiddenFiles) {
  const globber = await glob.create(searchPath, {
    followSymbolicLinks: true,
    implicitDescendants: true,
    omitBrokenSymbolicLinks: true,
    excludeHiddenFiles: !includeHiddenFiles
  })
  const files = []
  for (const found of await globber.glob()) {
    if (!(await fs.stat(found)).isDirectory()) files.push(found)
  }
  const searchPaths = globber.getSearchPaths()
  if (searchPaths.length > 1) return {files, root: commonAncestor(searchPaths)}
  if (files.length === 1 && searchPaths[0] === files[0]) return {files, root: path.dirname(files[0])}
  return {files, root: searchPaths[0]}
}

async function main() {
  const inputs = readInputs()
  const {files, root} = await findFilesToUpload(inputs.searchPath, inputs.includeHiddenFiles)
  if (files.length === 0) {
    const message = `No files were found with the provided path: ${inputs.searchPath}. No artifacts will be uploaded.`
    if (inputs.ifNoFilesFound === 'error') throw new Error(message)
    if (inputs.ifNoFilesFound === 'warn') core.warning(message)
    else core.info(message)
    return
  }
  core.info(`With the provided path, there will be ${files.length} file${files.length === 1 ? '' : 's'} uploaded`)
  // Upstream: with overwrite, delete an artifact of this name first (best effort); without, the store
  // refuses a second one (409).
  if (inputs.overwrite) {
    await artifact.deleteArtifact(inputs.name).catch(error => {
      if (!(error instanceof ArtifactNotFoundError)) core.debug(`Unable to delete artifact: ${error.message}`)
    })
  }
  const response = await artifact.uploadArtifact(inputs.name, files, root, inputs.options)
  core.info(`Artifact ${inputs.name} has been successfully uploaded! Final size is ${response.size} bytes. Artifact ID is ${response.id}`)
  const repository = process.env.GITHUB_REPOSITORY
  const url = `${realServerUrl}/${repository}/actions/runs/${process.env.GITHUB_RUN_ID}/artifacts/${response.id}`
  core.info(`Artifact download URL: ${url}`)
  core.setOutput('artifact-id', response.id)
  core.setOutput('artifact-digest', response.digest)
  core.setOutput('artifact-url', url)
}

run(main)
