"""Checkpoints written by streamrnn 0.1.0: their forecasters are another model (a network on the
value's residual over the last value or the season, with ``differencing``, ``damping`` and
``scale_target``), which 0.2's forecasters (a seasonal backbone, direct multi-step outputs,
intervals) cannot continue. Such a file is refused before anything in it is used, with the
version that wrote it and what to do; a lying 0.1.0 file is refused the same way (in a child
process, so a crash would show)."""
import base64
import json

import pytest

from test_checkpoint_hostile import run_child, sign, split
from streamrnn import checkpoint as ck
from streamrnn import spec as sp

# A GRU forecaster (hidden_size=4) after 30 values, saved by streamrnn 0.1.0 (key "a").
OLD = base64.b64decode(
    "U1JOTkNLUFQBAAAAAAAAAFoIAAAAAAAAeyJmb3JtYXQiOiJzdHJlYW1ybm4tY2hlY2twb2ludCIsInZlcnNpb24iOjEs"
    "InN0cmVhbXJubiI6IjAuMS4wIiwiY3JlYXRlZCI6IjIwMjYtMTItMDFUMDc6MjE6MTMuOTc0KzAwOjAwIiwic3BlYyI6"
    "eyJjZWxsIjoiZ3J1IiwicGFyYW1zIjp7ImhpZGRlbl9zaXplIjo0LCJudW1fbGF5ZXJzIjoxLCJ0YnB0dF9zdGVwcyI6"
    "MTYsInVwZGF0ZV9ldmVyeSI6MSwiY2xpcF9ncmFkaWVudCI6bnVsbCwiY2xpcF9ub3JtIjoxLjAsInNlYXNvbmFsaXR5"
    "IjowLCJkaWZmZXJlbmNpbmciOnRydWUsImRhbXBpbmciOjAuOSwic2NhbGVfaW5wdXRzIjp0cnVlLCJzY2FsZV90YXJn"
    "ZXQiOnRydWUsInNlZWQiOm51bGx9LCJvcHRpbWl6ZXIiOnsibmFtZSI6IkFkYW0iLCJsciI6MC4wMDEsImJldGFfMSI6"
    "MC45LCJiZXRhXzIiOjAuOTk5LCJlcHMiOjFlLTA4fSwibG9zcyI6eyJuYW1lIjoiU3F1YXJlZCJ9fSwic291cmNlIjpu"
    "dWxsLCJwb3NpdGlvbiI6bnVsbCwia2V5cyI6WyJhIl0sInN0YXRlcyI6W3siX25ldCI6eyJfX25ldHdvcmtfXyI6eyJj"
    "ZWxsIjozLCJuX2luIjoyLCJoaWRkZW5fc2l6ZSI6NCwibnVtX2xheWVycyI6MSwibl9vdXQiOjEsImsxIjoxLCJrMiI6"
    "MTYsImxvc3MiOjAsImh1YmVyX2VwcyI6MC4xfSwic3RhdGUiOnsicGFyYW1zIjp7IiRhcnJheSI6MH0sImgiOnsiJGFy"
    "cmF5IjoxfSwiYyI6eyIkYXJyYXkiOjJ9LCJyaW5nX3giOnsiJGFycmF5IjozfSwicmluZ19yIjp7IiRhcnJheSI6NH0s"
    "InJpbmdfZyI6eyIkYXJyYXkiOjV9LCJvdXQiOnsiJGFycmF5Ijo2fSwidCI6MjksImxhc3RfbG9zcyI6MC4wMzU3Mjkx"
    "NjkyMDg2NDg3Mn0sIm9wdGltaXplciI6eyJraW5kIjo0LCJsciI6MC4wMDEsImJldGFfMSI6MC45LCJiZXRhXzIiOjAu"
    "OTk5LCJlcHMiOjFlLTA4LCJyaG8iOjAuOSwiY2xpcF92YWx1ZSI6MC4wLCJjbGlwX25vcm0iOjEuMCwidCI6MjksIm0i"
    "OnsiJGFycmF5Ijo3fSwidiI6eyIkYXJyYXkiOjh9fX0sIl9jb2xzIjp7Il9fY29sdW1uc19fIjpbMix0cnVlLFtdLHsi"
    "JGFycmF5Ijo5fSx7IiRhcnJheSI6MTB9LHsiJGFycmF5IjoxMX1dfSwiX3JuZyI6eyJfX3JuZ19fIjp7ImJpdF9nZW5l"
    "cmF0b3IiOiJQQ0c2NCIsInN0YXRlIjp7InN0YXRlIjozMzI1OTY3MDcwMDU5NTQzMDQ5NzM3Mzg2ODI4NzMzNDUyNTc1"
    "MTIsImluYyI6MjI0MTA2NDc1ODQ1MTcxNTU1NzgyNDQyMjYzNjQwNTY0NDg0MTY3fSwiaGFzX3VpbnQzMiI6MCwidWlu"
    "dGVnZXIiOjB9fSwiX3lzIjp7Il9fc3RhbmRhcmRpemVyX18iOlt0cnVlLDMuMCwzMCwxLjk5OTk5OTk5OTk5OTk5OTYs"
    "NjAuMF19LCJfcnMiOnsiX19zdGFuZGFyZGl6ZXJfXyI6W3RydWUsMy4wLDI5LDAuMTM3OTMxMDM0NDgyNzU4NiwxMDMu"
    "NDQ4Mjc1ODYyMDY4OThdfSwiX2hpc3QiOnsiX19kZXF1ZV9fIjpbNC4wXSwibWF4bGVuIjoxfSwiX2xhc3RfciI6MC40"
    "NTY0MzU0NjQ1ODc2Mzg0NSwiX3QiOjMwfV0sImFycmF5cyI6W3siZHR5cGUiOiI8ZjgiLCJzaGFwZSI6WzkzXSwib2Zm"
    "c2V0IjowLCJuYnl0ZXMiOjc0NH0seyJkdHlwZSI6IjxmOCIsInNoYXBlIjpbMSw0XSwib2Zmc2V0Ijo3NDQsIm5ieXRl"
    "cyI6MzJ9LHsiZHR5cGUiOiI8ZjgiLCJzaGFwZSI6WzEsNF0sIm9mZnNldCI6Nzc2LCJuYnl0ZXMiOjMyfSx7ImR0eXBl"
    "IjoiPGY4Iiwic2hhcGUiOlsxNiwyXSwib2Zmc2V0Ijo4MDgsIm5ieXRlcyI6MjU2fSx7ImR0eXBlIjoiPGY4Iiwic2hh"
    "cGUiOlsxNiwxLDMyXSwib2Zmc2V0IjoxMDY0LCJuYnl0ZXMiOjQwOTZ9LHsiZHR5cGUiOiI8ZjgiLCJzaGFwZSI6WzE2"
    "LDFdLCJvZmZzZXQiOjUxNjAsIm5ieXRlcyI6MTI4fSx7ImR0eXBlIjoiPGY4Iiwic2hhcGUiOlsxXSwib2Zmc2V0Ijo1"
    "Mjg4LCJuYnl0ZXMiOjh9LHsiZHR5cGUiOiI8ZjgiLCJzaGFwZSI6WzkzXSwib2Zmc2V0Ijo1Mjk2LCJuYnl0ZXMiOjc0"
    "NH0seyJkdHlwZSI6IjxmOCIsInNoYXBlIjpbOTNdLCJvZmZzZXQiOjYwNDAsIm5ieXRlcyI6NzQ0fSx7ImR0eXBlIjoi"
    "PGY4Iiwic2hhcGUiOlswXSwib2Zmc2V0Ijo2Nzg0LCJuYnl0ZXMiOjB9LHsiZHR5cGUiOiI8ZjgiLCJzaGFwZSI6WzBd"
    "LCJvZmZzZXQiOjY3ODQsIm5ieXRlcyI6MH0seyJkdHlwZSI6IjxmOCIsInNoYXBlIjpbMF0sIm9mZnNldCI6Njc4NCwi"
    "bmJ5dGVzIjowfV0sImV4dHJhIjp7fX0AAAAAAACZDj2W7RDYvyi6Vbai5ua/2Au1DBXHxD/yhI//MhXoP2duvRmFdOe/"
    "6jP3+8xpxL8VpfZzlGrTP/pZvpUfRu6/kuz2NVIfkz/IRrOCFjbdPz8F8OPpwNs/+/a3lDyO77++itJKyrnrvxnAqffX"
    "fdG/5rVueK0c7T/J2Qm/xzbGv9zIe0Dol+U/n/eJVW2x1D/0tl4cE07Wv25dK1yDb9g/uen00q4u7T/y0UBGtbXhPylP"
    "BgU8quC/irLCkxM3lz+6UV8fu3DhP3F8er836Om/J+JuTacOsz8AS8DhnMO+P5HUCerPYOu/JuGx8WFsm7985NYIAejc"
    "v1Jye+ocoMC/SI/S1Fy5zj8VS+1Oxp3oPxnAK9qus9k/EY4I5YJ02r95N5OgjGPkv12kD+/XDOC/m2FV185n4b++E5AL"
    "ZF/Jv/vhDOJQPNS/8Wn6763M2z/WuEFhjpbnP+RR8zCtR9u/VrFkeNia7r86GnBj4vCzP0GDX0Kp/tA/wnF8R14Qxb9h"
    "+KopsDPIPzU+OEU7SYA/9LxFoEaewD8Wb3gZY/Puv/fk/bDtQNQ/9Sq5zR5E5j92D5j7DJPgv6aNzedJmNq/ETwBIs9E"
    "xz/L8CJA0Yfavzuu5Lck5+s/irTtlrDuwT+Y4G7eeRDfP01eL4oKadA/JH5Eh5Rm6r+aCgM3K/qgvzgeYeqtUsM/uWHV"
    "3h514797uyn+Ok6qvwrwDzjfRem/uw/K1zJHtb+PSgJd1tnbP8VaMnCJC7s/52R9pCW+7D8sR3W94auNPyg2ZgSlO46/"
    "3E9zWDvoOz8d9ByhtaqJP88zr+yIiIk/UlDrDnh0hD/ykceOW2SEvwGwLvLaJXE/E4g5uDhleL+0CDi1cM+JP3MKbDBH"
    "ZIm/qtL+++F5jb+meqm6bpxIP7SJzYgfI48/BlgudN3Bh78lv2FP5uiQv/YFVKHkAbI/I+Bx+54y1T9sE+bDv1Dcvxmr"
    "nEvu5pK/ZKlGRdbFiz/0+Y7QBXnHPwAY2Q+EhdI/tSDKq67p0793a21iDC3cvwAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAA7bhetbeB4r9vP9J3nr7eP2aJ53Wb0b4/BBVQeVGg3T9qsK9EIMXpP9rtv8Uln9w/zDt/Zp6g9j+rTFjo"
    "erbbP49jGxSlGfW/AAAAAAAAAMBSONBLdWnjvxyv0khoC98/2GgQPwL6tz9m+v7dfSveP/+gaE/zFek/N7kUqX5d3T/M"
    "O39mnqD2P9rtv8Uln9w/NC24noJh9b8AAAAAAAAAwHUF53eA/eO/fEsvypI63z9N9C5tvaCzPxye2PnDgt4/fbeB+Hyl"
    "6D8hKNhSFNfdP2phYNgZ/Oo/UJUdPClK2z/MO39mnqD2Pz4sDHC9INo/kTSKy+mn9L8AAAAAAAAAwHB20xHE2OO/r0x0"
    "MDq3xL9H86e/tWPJPzVrbtqETdW/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAADT23BEYWLXP6MUZ0EhA+Y/"
    "7gXqDac05T/XSrhmvszUP0MQlMumaek/jy+lU8k75D+F0YMp5uPbP2fedy2Eyec/G/AHdibc2j8S6rheejTdv02qNmpx"
    "SOG/egCHVY6N4D+MlR1nb0ixP81ag6l8EOe/Tvtc0+8uw7+TMwWmdVKCP0JsUb1F/tm/Egs+p7lJ0b+hLgk64PDLv05t"
    "bIHlWr2/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAABCbFG9Rf7ZvxILPqe5SdG/oS4JOuDwy79ObWyB5Vq9"
    "vwAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAASiExtjfM1j/MwfnLhcPhP1/iifXmuOQ/l80oMdLw4T9JSrbx"
    "q4/kPy6WnftFUd8/Zvqae6C13z/O+bh6zVXjP91IOEFNONw/EQUdegETwz9iQyVtcIHcv+N+x3UXQbK/55dBve2nwD8t"
    "RmTbrsLSv9gKC9cT+Nu/F8nJQuA2sz/LXIIv13S6v5dp97QBt6y/MIzfXtRN1b+64eKfLfa4vwAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAy1yCL9d0ur+Xafe0AbesvzCM317UTdW/uuHiny32uL8AAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAKzbEorPetM/YoEZ4aRe1j8Hj+DYMYrkP+j/ROKchOY/fr3rUC142z/UaJ2N1GrdP0/GrT9FIOI/"
    "aelZ+w3X2j/9zAnq3qjZP/1oPedPteE/khYo5cH1v78z2XmJKgvmvwZp6yKQe5a/hWr2N8PikD/FTTwrqSDXv1Dy9Aya"
    "Vra/HJHB2Gedxz8zZtvE1XzRP11fU7wrEM+/lQBXmxY33L8AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAByR"
    "wdhnncc/M2bbxNV80T9dX1O8KxDPv5UAV5sWN9y/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAOD9g7FHTM"
    "PyKsAzfHh8Y/EYMVvWom5j9JHNHANK7oP9fJtcY+jc8/jvaA9oUd4T9VhcvQ+SzkP8ikGmVhINM/DAtp/GV71z+KofO4"
    "rfXmP54EOTYfQtI//5jG1GdV7r+sIoc5kFLMv+DWJ7iTXrQ/NWmFUflWvr+tlQyzQs3hvwdqm+awmtQ/+lJ0Pmm23j/I"
    "1zdL/l2ovwqyEr0EfOm/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAHapvmsJrUP/pSdD5ptt4/yNc3S/5d"
    "qL8KshK9BHzpvwAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAu8w1RFsu6z/ppZBUQdjlP3ZlHOTHeMU/yrkV"
    "/lkG1j9H6ubPd5PRP5UGNnKWjuE/FD5t7+485D8SkVwnSoLmP5BQDa5mIu+/nJsXNGn87b+hJsDXBR3dP8jYataNK+c/"
    "jkT17qKC1L9cWig0rCChv8OjjKA7rr8/qgMyIzgO7r+JNM6rPcHjvzjIx4tNb8S/vrg6gZuMwT91JZ3jgBvWvwAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAiTTOqz3B4784yMeLTW/Ev764OoGbjME/dSWd44Ab1r8AAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAACUCgrueSdc/AJitxcII5j/mkbDICTvlP0ma0EYWVNU/xRyPnJVq6T+tYw2mHgjk"
    "P2fwb6YWHtw/q3H5aNkp6D+4BBNxwdnaP48ZCGc5gty/34lkyMmJ4r9kewImovvgP4iulzf9j60/3FdXJJMe5r/R+1VS"
    "8sXKv6RzwA8pY5G/xUQ011Xb2b8fONWY+Q7RvyhUa6Gy7tC/aNYpN0nAwL8AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAMVENNdV29m/HzjVmPkO0b8oVGuhsu7Qv2jWKTdJwMC/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAA2DtpPGKrWP1Ty2JVWyOE/r4jzruzT5D8FNyg0Kh7iP90bkOdDleQ/Xvc1BWQP3z+l+j2p1dzfPwGlWSVXwuM/zM3f"
    "xzY+3D/dAiDApw7EP98Bb+LI896/2KiWzI0ysL8hy7nSbQu/P5Y5uQzFedG/4xMtXq7X3r8JOaGEjqKoPx3GL31rOLq/"
    "S/KnrenvqL8xqnDQ8fjXv2e0Aqn44bq/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAdxi99azi6v0vyp63p"
    "76i/Mapw0PH4179ntAKp+OG6vwAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAqe2xcrxb0z/ot3wGBmXWPxBd"
    "7077nOQ/RXI1Caao5j+OxX0rnITbP/Z5+HhtJt0/g7ve2WM74j+2gi7vVXnbP8FB4lo/o9k/RYJ0/VXj4T81BvQUCDLF"
    "v56+O1ZQBea/r5O3O6BSor+kxgAsBomiP8kOEBkrjNm/9LMDNBQnu79D1STkcZfHPzupeAW1D9I/lvgQZMw30r+7gLq3"
    "OAXcvwAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAQ9Uk5HGXxz87qXgFtQ/SP5b4EGTMN9K/u4C6tzgF3L8A"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAABk+20t3MMw/L37BucNaxj822AbnXC/mP38+zCHu5Og/tRsUQqJg"
    "zz/RuYUpUu3gPzpDsBNQWeQ/sc4MMI9N0z9WYjH5yIDXP5uCKqIuNuc/OZ80C6RP0D9Z7//SgmXuvz5EMeqKk86/fydq"
    "5yU7uj+X8Uxwz83Dv9q12SkPH+K/BQ8/dBii1D++6JgUsmvfP20ukEuFlba/K+cRwUp06b8AAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAUPP3QYotQ/vuiYFLJr3z9tLpBLhZW2vyvnEcFKdOm/AAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAACud0MOGB/rP+rR79bm5+U/9qm4+MYFxT/2WfzmNJTWP06LuUVNzdE/S8MjAx6E4T/hmLsSlXvkP1A5"
    "FJx8yeY/z5wb1DYl779CSL80c/jtv71OKfAuDNw/9XaeHD5A5z/pvEFyNsHVv6kTRJwhPIe/2Xi7P2jZtj/GIDPxXnfu"
    "vzXwFSbMnOO/029ogwPdw7/ta/g0Vey5P8sHOUEX3da/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA18BUm"
    "zJzjv9NvaIMD3cO/7Wv4NFXsuT/LBzlBF93WvwAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAApgQ1+4g01z+2"
    "SXBBt/7lP0FidZYqSOU/lDrtqf2h1T82gEzy6mjpP4xiZ1w08uM/obkWYrg53D840hSaZmboP+hmywwxy9o/DBfXW4XY"
    "27/YdVBGQEzjvznsPDNeL+E/k3PfuwKcqT8kY5e3PXTlv+Ne4VOOUM+/zKjtyg66pL+ZTfmFAKHZv541FC38rdC/03x0"
    "rke30r/RUHUYkYrCvwAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAmU35hQCh2b+eNRQt/K3Qv9N8dK5Ht9K/"
    "0VB1GJGKwr8AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAPl5ngLwkdY/CjuPrFa94T93DiAche3kP8uV7PlF"
    "N+I/TbUvbsOT5D8UZAG43fXeP1cdHJaR898/viLs6YUF5D9DfB3NGiHcP2JKSPTWHMU/bRgtGvA+4L+sD6yOf1ywv32d"
    "bI+u6Lw/qhwgOjWB0L9AiDXjnk7gvyH6hUV+OJg/B2IhEcnBub+bwHSfNfSkv3V3IfJAndm/Xb9ZxHhTvb8AAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAdiIRHJwbm/m8B0nzX0pL91dyHyQJ3Zv12/WcR4U72/AAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAACf7ZQ1JUnTP3ZuYBHOVtY/d9HG6eWy5D+JWtUgJ73mP1dEuKmtg9s/icx7et4K3T9S"
    "vWPkAE7iPxrX77uH49s/UzunnmBx2T+1JUw85griP4O8QC+7lci/gKIVCxkj5r/UESzQvTOov+46lvlCYak/ThNurQQU"
    "27+yv2O1HBrAv/T5jtAFecc/ABjZD4SF0j+1IMqrrunTv3drbWIMLdy/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAADznT5Dndm5v/YoQnYSfbC/tcjfzzca0L9yWaE91Qe5vwAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "QDVW3Ba20z+7oW+7HSjWP0Q+ZGI8h+Q/6k6ajQA25j+BBMKXAEvbP2408XqCGN4/OFmMyzPp4T/bEBJLhL/ZP23nKyJk"
    "W9k/42fZrqB04T+PjzzVIMmpv0Sx5LORYua/t5u3Dv2/RD8B8dyDVoOUv1K5aRTufNK/b1AMid+Asr9MLJdPMJPHP3iC"
    "YclPjtA/nFUhhiTdxL/QDPdMpkbdvwAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAATCyXTzCTxz94gmHJT47Q"
    "P5xVIYYk3cS/0Az3TKZG3b8AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAKRhPWTyCc0/UUpaXyjHxj+6lYlu"
    "mjDmP153DULwQug/5dV/gkrczz8p5mTMuYbhP/uUL92z3OM/f18Atf7b0j/974vnEgHXP1hR76Kzi+Y/1HH9Uvms1T97"
    "ISOViUbuv85ounO/cci/L5gSwxewoT9RLFZ7EMaqv85jSPNAsOG/UUSfSlU21D+HJo8Kb3bdP7hnqqPJ8ps/56PHi+Gq"
    "6b8AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAFFEn0pVNtQ/hyaPCm923T+4Z6qjyfKbP+ejx4vhqum/AAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAADBUtt9HkDrP35CBz0ryeU/UKHV4YE9xj8HLqev6y3VP1zM+pLGetE/"
    "WrhgvMLE4T9AqupNud7jP5PypC2aIeY/TcwJ0eoZ77+pxxQOsAnuv1SKHm7moN4/YraoYesF5z+tkH9+/2zSvzrPjxMG"
    "q7O/dIv0B5yAxz/Q37juy4Xtv3B20xHE2OO/r0x0MDq3xL9H86e/tWPJPzVrbtqETdW/AAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAS1hiFlP7uv2baKg0XjOS/sBGo8npT2r9p9WPeBNURQAaSLeLpP/S/z0wWjR7D7b8vgQizkK3j"
    "v8z7OkWSH9m//jlkKicDEkDWqZSqbZXzv7wiSPoxxey/+L3vZbf04r+wDYMx3DHYv3eVcFZPedy/BgYI6bKBEUDHBDpc"
    "Iy/1v+dVh/9OHdE/RkZmCaB3Qb8OlW/hkpFVv2H7B2qla2q/yLeKqsFjJD/8uc+Sb3J/P+i0hAs1mJw/iLWMGbp4hL/S"
    "IOzP1ux7P5ESErtrF5M/NF7gHlXccb8nTbI8w0WZv3xA1vMPvlM/IqNsPYA7ML9AGvOITURgP3cCjRXaoHy/Oe9eeSHS"
    "Pj+bGxFTu/qQP7dy09q+/6A/UqEZem8dpj+7MxfFIYB5P8WQVenHtHY/XpmZ0LOPl7/XuwLmBqluv3k85cde58s+qHBk"
    "uuba+b5Ncvy7rsNiv1YYM9iD2W8/JBbXJjYbHL+hs6x4IaJwvy5nUhN6BHS/M0RLdLRXm7/y/Uj7dxAuvwOSOEkyVEI/"
    "Apm+nF9rij+4Ihji1LKjv7PYOsPJZj2/9sw7HwoBEr/T0pcD1lhMvzeGKiQDuGI/SC4f81mEJL8EurSsVXRxv6KkBUCR"
    "ToC/6xrmbNB5j7/UoPIUbblKv3+2XTOwQy4/yykyRgytdD9UdQF2oaiDvzvmChjOgf0+TcNfBwDZDj/dG6WtP64PP462"
    "iUNQZmM/zJ9syUSA+D5XXoJtM+BGP7fN5xUVpG+/Xm5d1rTsfD+LP5oDf+VJv4LOcTJyPUC/YGewuCk/bD8dmSu+tv6A"
    "vxZKFJJZ3Ue/gulVp/ZjIj8dg/TtSjNSv2TSdmem7k0/J/kGpvv7MD+072StnPZ2P+3m01C4aIc/yCGvfCSPdD/gWHGt"
    "86hbPzyapLhkfvo+KPn5bOmtfz/HH6HTmHihv8dZ+pCwXVG/Tk0ZxqmXNb+F0mUJl7hxP4Jni/JSh4O/O+fkgzI3OL/y"
    "2W2hQUZ5v3agKhaZ3Hm/bl9czRFVhD8VScQKcolRv/qjQSyZtoA/prv7hm6cr78qzjImhuzLP2KpqQXUEXw/MxmymRet"
    "UD8YNhBZUOOgv61Ml+6Yir8/BNIqQzV3bz/RJc0kvorCP548UI+qgrI/izCLyl2ftD+zB4/EZzmnPziyTlnnlti/X9tA"
    "RpemSz6ZcTuL46qaPn+Sjk4IF7c+CYeMR3OtIz5De9i6F6zOPsGj/63O/Bg/NO3I+fMWCj8uRMWrNgnIPr0BXmViie8+"
    "AAWfzFeGHT+a+i9e/FoyPzrC6fzI13k+SEwVRAuyLD4jXQfRjK2TPmeA9Fk4Psc+n3wtagleTz7l/kRfXFD1PrjynIRx"
    "IyE/PIPF/ZZiEj/vurTdOH7DPgv+CaYaMMU+hD1O/XGlAj8RLBrCn4ckP6obWInxsHk+6Gfy+w24Az6Ukh0T7iGcPtlo"
    "i2P9Rag+KhscEVmXBz4FGtaxcFW/Pk4EWZzru8M+UOBfQsgmBT/uGJLe399DPorzwXFAToo+tpJtA5df5D5nInAyitka"
    "P1AFiop1jFc+JELfF6ylAz6weyCaSBJyPj6oVjPmp5Q+nQZXz82pHD4O9wDs0YG1Pgw+AAYgANU+BRznYVdQ6z4HpBGb"
    "9mhmPsz9FN6vc2c+SRQUYUQywD4gjOdslqPcPl193b8y2Ec+zjcMabjsCT7dElJy+RSCPjbsj5HC66A+q0UfMdRzAT5s"
    "FGJNDkODPptYEWuJnso+I3RLbP562j5mbtu/mjd0PoVEX4Im+n8+UiheIBBexj6xhLl/pZ4EP6a+aWzDnlc+0BYyoPbF"
    "JT5INC1L0BCOPuDga9T7LqI+HYpQKkTDNz6m/B6Ug4y/Pgfq5CU9p/M+kFGgE7hL3z7j2r8eoK2RPjQsAtl04Yk+79El"
    "Cgoy0T71im5j5E8dPxKspmqHgnM+Zvo2BCs0Qz4bIuOok/i7Pl6w9D1sSto++3tB4TTBRT7KUIuLl0DQPlrBA02DDwI/"
    "d/eTjPzf/D6Is643VYaXPjlRj8U6Fes+8IPcrBQqMT/XzD2Dqa5uPzEF3aTrocI+H2f3JvW7tz5v+TX/JbkNP+8Dl4IR"
    "ZFU/Z5OsbXFTpD7vP2RUGYJYP/3KQ2naJEQ/rlMhJa8sRj9rvTDb2GpaPz2MNPxjuIM/ZTS7ATxEF5nyw/SEZ/LzVSuC"
    "XgQmKqFbY7QD+k3JzFc="
)


def test_a_0_1_0_checkpoint_is_refused_with_the_version_and_what_to_do(tmp_path):
    p = tmp_path / "old.srnn"
    p.write_bytes(OLD)
    header = ck.read_header(p)  # the header itself is still readable (inspect shows it)
    assert header["streamrnn"] == "0.1.0" and "differencing" in header["spec"]["params"]
    for spec in (None, sp.model_spec("gru", hidden_size=4)):
        with pytest.raises(ck.CheckpointError) as e:
            ck.load(p, spec)
        msg = str(e.value)
        assert "streamrnn 0.1.0" in msg and "0.1 series" in msg
        assert "empty checkpoint directory" in msg and "keep streamrnn 0.1" in msg


def _old_net(h):
    return h["states"][0]["_net"]


OLD_LIES = {
    "t_negative": lambda h: _old_net(h)["state"].update(t=-5),
    "t_near_2_63": lambda h: _old_net(h)["state"].update(t=2 ** 63 - 1),
    "opt_lr": lambda h: _old_net(h)["optimizer"].update(lr=10.0),
    "n_in": lambda h: _old_net(h)["__network__"].update(n_in=10 ** 8),
    "hidden": lambda h: _old_net(h)["__network__"].update(hidden_size=4096),
    "columns": lambda h: h["states"][0]["_cols"]["__columns__"][2].extend(["x", "y", "z"]),
    "spec_junk": lambda h: h["spec"]["params"].update(seasonality=[1, 2, 3], horizon="x"),
    "ref_twice": lambda h: _old_net(h)["state"].update(c=_old_net(h)["state"]["h"]),
}


def test_lying_0_1_0_checkpoints_are_refused_too(tmp_path):
    header, data = split(OLD)
    paths = []
    for name, mutate in OLD_LIES.items():
        h = json.loads(json.dumps(header))
        mutate(h)
        p = tmp_path / f"{name}.srnn"
        p.write_bytes(sign(h, data))
        paths.append(p)
    for name, r in zip(OLD_LIES, run_child(paths)):
        assert r["result"] == "refused", (name, r)
        assert "0.1 series" in r["message"], (name, r["message"])
