"""What the views write, as plain code: number columns of a delimited export stay numbers, negative ones too.
"""

from __future__ import annotations

import io

from parallux._views.output import write_delimited


def test_delimited_number_columns_stay_numbers_even_negative() -> None:
    stream = io.StringIO()
    write_delimited(stream, ["name", "returncode", "delta"], [["-9", -9, -0.5], ["=1", None, 2]], "csv")
    assert stream.getvalue() == "name,returncode,delta\n'-9,-9,-0.5\n'=1,,2\n"
