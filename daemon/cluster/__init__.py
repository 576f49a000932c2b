"""The cluster dispatcher (``neural-style serve --ray ADDRESS``): the same ZeroMQ front door, jobs run
by a pool of Ray actors, each holding a warm VGG19.  Ray is optional and imported lazily (``pip install
neural-style-gimp[cluster]`` or ``install.py --cluster``); nothing here is imported by a plain daemon."""
