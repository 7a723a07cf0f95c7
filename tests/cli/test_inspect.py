from attnlab.cli.main import main


def test_inspect_prints_heads_weighing_animal(capsys):
    text = "The animal didn't cross the street because it was tired"
    assert main(["inspect", text, "--token", "it", "--key", "animal", "--top", "2"]) == 0
    out = capsys.readouterr().out
    assert 'heads where "it" weighs "animal" most' in out
    assert len([line for line in out.splitlines() if line.strip()[:1].isdigit()]) == 12


def test_inspect_top_keys_table(capsys):
    assert main(["inspect", "the cat sat on the mat", "--token", "cat"]) == 0
    assert "layer  5 head 11:" in capsys.readouterr().out


def test_inspect_unknown_token_is_a_clear_error(capsys):
    assert main(["inspect", "the cat sat", "--token", "dog"]) == 2
    assert "token 'dog' is not in the text" in capsys.readouterr().err
