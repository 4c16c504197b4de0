import anypool


def test_thread_pool_roundtrip(make_pool):
    pool = make_pool("thread", 2)
    assert pool.submit(pow, 2, 10).result(timeout=5) == 1024
    assert list(pool.map(abs, [-1, -2, 3])) == [1, 2, 3]


def test_import_does_not_import_multiprocessing():
    import subprocess
    import sys

    heavy = ("multiprocessing", "dask", "ray", "concurrent.futures.process")
    code = f"import sys, anypool; print(sorted(m for m in sys.modules if m.startswith({heavy})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert anypool.Pool is not None
