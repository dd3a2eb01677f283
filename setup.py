"""The one compiled part of hsmaudit: the parser's fast-path match (src/hsmaudit/records/_scan.c).

Everything else is in pyproject.toml. The extension is optional: where it cannot be built (no C
compiler), hsmaudit installs without it and the parser runs the same match as a regex, with the
same results (tests/unit/test_fast_scan.py). It uses only CPython's stable ABI (abi3), so one
build serves every Python from 3.11 on.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "hsmaudit.records._scan",
            sources=["src/hsmaudit/records/_scan.c"],
            py_limited_api=True,
            define_macros=[("Py_LIMITED_API", "0x030B0000")],
            extra_compile_args=["-O2"],
            optional=True,
        )
    ],
    # the wheel's tag says what the build is: cp311-abi3, for every CPython from 3.11 on
    options={"bdist_wheel": {"py_limited_api": "cp311"}},
)
