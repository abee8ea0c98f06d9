"""The one compiled part: the pass's parser for ranges of plain numbers (everything else is in pyproject.toml).

``optional``: where no C compiler is found the install goes on, and the pass reads every range with pyarrow.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "normflow.data.plain_numbers",
            ["normflow/data/plain_numbers.c"],
            extra_compile_args=["-O2"],  # after Python's own -O3, which makes this loop 40% slower (gcc 12)
            optional=True,
        )
    ]
)
