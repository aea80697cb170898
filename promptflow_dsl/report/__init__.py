"""Report pages: the trace viewer (``pflow trace view``) and eval reports (``pflow
eval --show RUN --html``), each one self-contained HTML file.

Stage: command line (it reads trace files and run folders, the outputs of the run and
dataset stages). Modules:

* ``page`` — the HTML shell: inline styles and scripts (package data in ``assets/``),
  the page data as one safely escaped JSON blob, a policy that forbids any network
  request;
* ``trace_data`` — traces and run folders as the viewer's data (flat steps, parents
  by index, times from the start of the view, model calls in flight);
* ``sources`` — what ``RUN`` names: a trace file, a run folder, ``last``, a run id;
* ``trace_page`` — the viewer page;
* ``eval_report`` — the report of one eval run, or of two compared;
* ``svg`` — plots drawn as inline SVG (bars with intervals, histograms, a step chart).
"""
