from fundtrace import __version__


def test_version(cli):
    r = cli("--version")
    assert r.code == 0
    assert __version__ in r.out


def test_load_and_status(cli, tmp_path):
    f = tmp_path / "t.csv"
    f.write_text("txn_id,ts,src_account,dst_account,amount\n1,2024-01-01 10:00,A,B,100\n2,2024-01-01 10:05,B,C,50\n")
    r = cli(f"load transactions {f}")
    assert r.code == 0, r.err
    assert "2 kept" in r.err
    r = cli("status --format json")
    assert r.code == 0
    assert '"transactions": 2' in r.out
