"""``seglab serve``: trained models behind an HTTP API and a web page.

``models`` loads and names what is served, ``upload`` turns a request body into an image (in
memory only), ``batching`` runs inference off the event loop through a bounded queue that
batches concurrent requests within a pixel budget, ``limits`` bounds each client (a body
timeout, requests in progress per address), ``app`` is the FastAPI application, ``server`` runs
it with uvicorn (``process``: in a process of its own, for the browser and load tests), and
``static/`` holds the page (plain HTML, JavaScript and CSS, no external resource).
"""
