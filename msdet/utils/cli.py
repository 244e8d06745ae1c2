"""The entry point of every msdet tool: a user error (bad config key, bad
argument, bad data, bad checkpoint) is one message on stderr and exit
status 1, not a traceback. ``--debug`` on the command line or
``MSDET_DEBUG=1`` in the environment shows the traceback instead."""
import os
import sys

DEBUG_ENV = 'MSDET_DEBUG'


def _message(err):
    text = err.args[0] if isinstance(err, KeyError) and len(err.args) == 1 \
        and isinstance(err.args[0], str) else str(err)
    return f'{type(err).__name__}: {text}' if text else type(err).__name__


def end_distributed():
    """After a distributed run, let every rank wait for the others and
    destroy the process group: a rank whose process exits while the group
    is alive can abort in the communication backend's destructor
    ('terminate called without an active exception')."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def run_tool(main, argv=None):
    """Call ``main(argv)`` (``sys.argv[1:]`` by default, ``--debug``
    removed) and exit: with ``main``'s return value if it is an int, 0
    otherwise, 1 with one message for an exception, 130 on Ctrl-C."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = '--debug' in argv or \
        os.environ.get(DEBUG_ENV, '') not in ('', '0')
    argv = [a for a in argv if a != '--debug']
    prog = os.path.basename(sys.argv[0]) or 'msdet'
    try:
        result = main(argv)
    except KeyboardInterrupt:
        if debug:
            raise
        print(f'{prog}: interrupted', file=sys.stderr)
        sys.exit(130)
    except Exception as err:  # noqa: B902  (SystemExit passes through)
        if debug:
            raise
        print(f'{prog}: error: {_message(err)}\n(the traceback: add --debug '
              f'or set {DEBUG_ENV}=1)', file=sys.stderr)
        sys.exit(1)
    end_distributed()
    sys.exit(result if isinstance(result, int) and
             not isinstance(result, bool) else 0)
