# lookalike: `make run` shows the service working, `make test` runs the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
BASE_PYTHON ?= python3

.PHONY: bench-1m install run test test-all proto lint hostile redis serve eval model quality unseen bench compose-up compose-down clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(BASE_PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

redis: install
	PYTHON=$(PY) scripts/ensure-redis

## The main job on the embedded default: sample catalogue -> worker -> Qdrant -> gRPC search.
run: install redis
	$(VENV)/bin/lookalike demo --workdir demo-output

## All-in-one service on localhost:50051 (embedded store + worker), no authentication;
## the web page and HTTP/JSON API on http://127.0.0.1:8080/.
serve: install redis
	LOOKALIKE_AUTH=none LOOKALIKE_LISTEN=127.0.0.1:50051 LOOKALIKE_HTTP_LISTEN=127.0.0.1:8080 \
		$(VENV)/bin/lookalike serve

## Recall on the GroceryStoreDataset benchmark next to this repo.
eval: install redis
	$(VENV)/bin/lookalike eval ../shared/data/grocerystore_dev --json eval-results.json

## Rebuild the shipped models from GroceryStoreDataset next to this repo (fixed seed, ~6 min):
## lite0-shelf, then lite0-shelf-640 (its vectors projected to 640 dimensions), then their
## full-integer network for LOOKALIKE_RUNTIME=litert-int8 (calibrated on the same photos).
model: install
	$(VENV)/bin/lookalike train ../shared/data/grocerystore_dev lookalike/model/artifacts/lite0-shelf \
		--mode unfreeze --loss cosine --seed 0
	$(VENV)/bin/lookalike shrink-model lookalike/model/artifacts/lite0-shelf \
		../shared/data/grocerystore_dev lookalike/model/artifacts/lite0-shelf-640 --dim 640
	$(VENV)/bin/lookalike quantize-model lookalike/model/artifacts/lite0-shelf ../shared/data/grocerystore_dev

## The product-split comparison table of the README (~15 min).
quality: install
	$(PY) scripts/quality_experiments.py --data ../shared/data/grocerystore_dev \
		--out quality-results --parts tricks,train

## Products never trained on, 20-way (2 folds) and the SMVS DVD covers, through the model classes (~10 min).
unseen: install
	$(PY) scripts/unseen_folds.py --folds 2 --out unseen-results

## Performance: bare CNN, gRPC Search at 10k/100k, ingest, vector store; table + bench-results.json
## (~15 min on 2 cores; BENCH_ARGS=--quick for a smoke run of about a minute).
bench: install redis
	$(PY) bench/run.py $(BENCH_ARGS)

## 1M vectors with an HNSW index: build (~10 min on 2 cores), then search with and without a
## 10 % filter, recall@10 against exact float32, bytes and memory per image; bench-1m-results.json.
bench-1m: install redis
	$(PY) bench/run.py --only store --store-sizes 1000000 --store-configs edge-turbo8-hnsw \
		--out bench-1m-results.json $(BENCH_ARGS)

## Import contracts (pyproject [tool.importlinter]), then the tests (Chromium for the page's).
test: install redis
	scripts/ensure-chromium
	$(VENV)/bin/lint-imports
	$(PY) -m pytest

## Including the slow checks.
test-all: install redis
	$(PY) -m pytest -m ''

proto: install
	$(PY) -m grpc_tools.protoc -Iproto --python_out=. --pyi_out=. --grpc_python_out=. \
		proto/lookalike/v1/lookalike.proto

lint: install
	$(PY) -m pip install --quiet ruff
	$(PY) -m ruff check lookalike services tests bench scripts
	$(VENV)/bin/lint-imports

## Known attacks replayed against a fresh service on loopback (one line per finding).
hostile: install redis
	$(PY) scripts/hostile.py

compose-up:
	docker compose up --build -d

compose-down:
	docker compose down

clean:
	rm -rf demo-output .pytest_cache .redis
