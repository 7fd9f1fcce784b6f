"""Drives headless Chromium through the DevTools protocol (aiohttp's WebSocket client; no extra package).

Enough for a page test: open a URL, put a file into an <input type=file>, evaluate JavaScript, screenshot.
"""

import asyncio
import base64
import itertools
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from typing import Any, Optional

import aiohttp

CANDIDATES = ('chromium', 'chromium-browser', 'google-chrome')


def find_chromium() -> Optional[str]:
    return next((path for path in map(shutil.which, CANDIDATES) if path), None)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


class Browser:
    """A headless Chromium with one page, closed on exit."""

    def __init__(self, width: int = 1400, height: int = 900):
        self._size = (width, height)
        self._ids = itertools.count(1)

    async def __aenter__(self) -> 'Browser':
        port = free_port()
        self._profile = tempfile.mkdtemp(prefix='petseg-chromium-')
        self._process = subprocess.Popen(
            [find_chromium(), '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
             f'--remote-debugging-port={port}', f'--user-data-dir={self._profile}',
             f'--window-size={self._size[0]},{self._size[1]}', 'about:blank'],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._session = aiohttp.ClientSession()
        deadline = time.monotonic() + 60
        while True:
            try:
                async with self._session.get(f'http://127.0.0.1:{port}/json/list') as response:
                    pages = [t for t in await response.json() if t['type'] == 'page']
                    if pages:
                        break
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError('Chromium did not open its DevTools port')
            await asyncio.sleep(0.2)
        self._socket = await self._session.ws_connect(pages[0]['webSocketDebuggerUrl'], max_msg_size=0)
        await self.send('Page.enable')
        await self.send('Runtime.enable')
        return self

    async def __aexit__(self, *exc) -> None:
        await self._socket.close()
        await self._session.close()
        self._process.terminate()
        self._process.wait(30)
        shutil.rmtree(self._profile, ignore_errors=True)

    async def send(self, method: str, **params) -> Any:
        message_id = next(self._ids)
        await self._socket.send_str(json.dumps({'id': message_id, 'method': method, 'params': params}))
        while True:
            message = json.loads((await self._socket.receive()).data)
            if message.get('id') == message_id:
                if 'error' in message:
                    raise RuntimeError(f'{method}: {message["error"]}')
                return message.get('result', {})

    async def open(self, url: str) -> None:
        await self.send('Page.navigate', url=url)
        await self.wait_for("document.readyState === 'complete'")

    async def evaluate(self, expression: str) -> Any:
        result = await self.send('Runtime.evaluate', expression=expression, returnByValue=True, awaitPromise=True)
        return result['result'].get('value')

    async def wait_for(self, expression: str, timeout_s: float = 120) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = await self.evaluate(expression)
            if value:
                return value
            await asyncio.sleep(0.2)
        raise TimeoutError(f'{expression} stayed false for {timeout_s} s')

    async def upload(self, selector: str, path: str) -> None:
        root = await self.send('DOM.getDocument')
        node = await self.send('DOM.querySelector', nodeId=root['root']['nodeId'], selector=selector)
        await self.send('DOM.setFileInputFiles', files=[os.path.abspath(path)], nodeId=node['nodeId'])

    async def screenshot(self, path: str) -> str:
        shot = await self.send('Page.captureScreenshot', format='png', captureBeyondViewport=True)
        with open(path, 'wb') as f:
            f.write(base64.b64decode(shot['data']))
        return path
