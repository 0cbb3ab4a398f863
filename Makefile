# Portable: works with OpenBSD make and GNU make (no GNU-only syntax).
PYTHON ?= python3
VENV ?= .venv
BIN = ${VENV}/bin

all: test

${VENV}/.installed: pyproject.toml
	${PYTHON} -m venv ${VENV}
	${BIN}/python -m pip install -q --upgrade pip
	${BIN}/python -m pip install -q -e '.[test]'
	touch ${VENV}/.installed

venv: ${VENV}/.installed

lint: venv
	${BIN}/ruff check carpd_py tests bench
	${BIN}/ruff format --check carpd_py tests bench
	${BIN}/mypy

test: lint
	${BIN}/python -m pytest ${PYTEST_ARGS}

demo: venv
	${BIN}/python -m carpd_py.demo

bench: venv
	${BIN}/python -m compileall -q carpd_py  # as installed: no compiling at each start
	${BIN}/python -m bench

clean:
	rm -rf ${VENV} build *.egg-info .mypy_cache .pytest_cache .ruff_cache

.PHONY: all venv lint test demo bench clean
