from airflow_provider_edgeimpulse.hooks.job_log import stdout_lines


def test_newest_first_answer_comes_back_oldest_first_even_with_equal_timestamps():
    answer = {
        "stdout": [
            {"created": "2026-01-01T00:00:02Z", "data": "third\n"},
            {"created": "2026-01-01T00:00:01Z", "data": "second"},
            {"created": "2026-01-01T00:00:01Z", "data": "first"},
            "not an entry",
        ]
    }
    assert stdout_lines(answer) == ["first", "second", "third"]


def test_missing_stdout_is_no_lines():
    assert stdout_lines({}) == []
    assert stdout_lines({"stdout": None}) == []


def test_hook_log_tail_is_oldest_first(edgeimpulse_emulator):
    from airflow_provider_edgeimpulse.hooks.edgeimpulse import EdgeImpulseHook
    from airflow_provider_edgeimpulse.jobs.blocking import wait_for_job_blocking

    edgeimpulse_emulator.configure(job_duration=0.1, job_outcome="failure")
    hook = EdgeImpulseHook()
    job_id = hook.start_retrain()
    outcome = wait_for_job_blocking(hook.credentials, hook.project_id, job_id, timeout=30)
    lines = hook.get_job_stdout_lines(job_id, limit=5)
    assert lines[-1] == "Job failed (see above)"
    assert outcome["log_tail"][-1] == "Job failed (see above)"


def test_an_error_quotes_the_last_lines_of_the_log_once_cut():
    from airflow_provider_edgeimpulse.hooks.job_log import ERROR_TAIL_LINES, quoted_tail

    lines = [f"line {n}" for n in range(ERROR_TAIL_LINES + 5)]
    assert quoted_tail(lines).splitlines() == lines[-ERROR_TAIL_LINES:]
    assert quoted_tail([]) == "<no log>"
